{
  "targets": [
    {
      "target_name": "xdpstack_native",
      "sources": ["xsk.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "../bpf"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "libraries": ["-lxdp", "-lbpf"]
    }
  ]
}
