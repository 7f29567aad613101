// xdpstack native AF_XDP core.
//
// Two objects, both driven from the TypeScript driver (driver/afxdp.ts):
//  - Program: our XDP program (driver/build/bpf/xdpstack_xdp.bpf.o) attached to one interface
//    through libxdp, plus the maps of owned MACs / IPv4 / IPv6 addresses the stack fills.
//  - Xsk: one UMEM + one AF_XDP socket bound to (interface, queue). The UMEM is exposed to JS as
//    an external ArrayBuffer (no copy). Ring operations take a whole burst per call: arrays of
//    addresses / lengths go in and out as Uint32Arrays; there is never a call per packet.
//
// Frame ownership stays in JS (umem/pool.ts): this file only moves descriptors between the
// rings and the arrays it is given.
//
// Threads: the addon may be loaded by several worker_threads at once (one Xsk per queue in each).
// Nothing mutable is process-wide except what libxdp/libbpf keep themselves: their print hooks
// are set once, the messages they print go to a per-thread buffer (they print on the calling
// thread), and their program-level calls (attach, detach, multiprog queries: libxdp caches the
// kernel's dispatcher support and the bpffs path in unsynchronised statics) run under one mutex.
// Classes are defined per environment (instance data), never in static references.
#include <napi.h>
#include <uv.h>

#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/if_xdp.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include <mutex>
#include <string>

#include "xdpstack_maps.h"

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

namespace {

constexpr uint32_t kBurstMax = 64;
constexpr const char* kProgName = "xdpstack_xdp";

// ---- library log capture -------------------------------------------------------------------
// libxdp / libbpf messages are kept (last few KiB) so errors and warnings reach JS instead of
// being printed on stderr. Per thread: the libraries print on the thread that called them, so a
// worker sees its own messages only.
thread_local std::string t_log;

void AppendLog(const char* fmt, va_list ap) {
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  t_log += buf;
  if (t_log.size() > 8192) t_log.erase(0, t_log.size() - 8192);
}
int XdpPrint(enum libxdp_print_level level, const char* fmt, va_list ap) {
  if (level == LIBXDP_DEBUG) return 0;
  AppendLog(fmt, ap);
  return 0;
}
int BpfPrint(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  AppendLog(fmt, ap);
  return 0;
}

// The libraries' print hooks are process-wide: installed once, by the first environment.
std::once_flag g_print_once;

// Serialises libxdp's program-level calls (see the note at the top).
std::mutex g_xdp_mu;

// Per environment (main thread or worker): the Program class, to tell a real Program apart
// from any other object given to Xsk.register().
struct AddonData {
  Napi::FunctionReference program;
};

Napi::Value ErrnoError(Napi::Env env, const std::string& what, int err) {
  if (err < 0) err = -err;
  std::string msg = what + ": " + strerror(err);
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("what", Napi::String::New(env, what));
  e.Set("log", Napi::String::New(env, t_log));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value TypeErr(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

// One N-API call per array (the hot calls pass two arrays per burst): fails for anything but a
// Uint32Array.
bool GetU32Array(const Napi::Value& v, uint32_t** data, size_t* len) {
  napi_typedarray_type t;
  size_t n = 0;
  void* d = nullptr;
  if (napi_get_typedarray_info(v.Env(), v, &t, &n, &d, nullptr, nullptr) != napi_ok || t != napi_uint32_array) return false;
  *data = static_cast<uint32_t*>(d);
  *len = n;
  return true;
}

uint32_t ProdLevel(const struct xsk_ring_prod* r) {
  if (!r->producer) return 0;
  return __atomic_load_n(r->producer, __ATOMIC_ACQUIRE) - __atomic_load_n(r->consumer, __ATOMIC_ACQUIRE);
}
uint32_t ConsLevel(const struct xsk_ring_cons* r) {
  if (!r->producer) return 0;
  return __atomic_load_n(r->producer, __ATOMIC_ACQUIRE) - __atomic_load_n(r->consumer, __ATOMIC_ACQUIRE);
}

// ---- Program -------------------------------------------------------------------------------
class Program : public Napi::ObjectWrap<Program> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Program",
                       {InstanceMethod("mapUpdate", &Program::MapUpdate),
                        InstanceMethod("counters", &Program::Counters),
                        InstanceMethod("police", &Program::Police),
                        InstanceMethod("detach", &Program::Detach),
                        InstanceAccessor("attachMode", &Program::AttachMode, nullptr),
                        InstanceAccessor("dispatcher", &Program::Dispatcher, nullptr),
                        InstanceAccessor("xsksMapFd", &Program::XsksMapFd, nullptr)});
  }

  // new Program(ifname, objPath, mode: 'native' | 'skb')
  Program(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Program>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsString()) {
      TypeErr(env, "Program(ifname, objPath, mode)");
      return;
    }
    ifname_ = info[0].As<Napi::String>().Utf8Value();
    std::string path = info[1].As<Napi::String>().Utf8Value();
    std::string mode = info[2].As<Napi::String>().Utf8Value();
    mode_ = mode == "skb" ? XDP_MODE_SKB : XDP_MODE_NATIVE;
    ifindex_ = if_nametoindex(ifname_.c_str());
    if (!ifindex_) { ErrnoError(env, "if_nametoindex(" + ifname_ + ")", errno); return; }
    t_log.clear();
    std::lock_guard<std::mutex> lock(g_xdp_mu);
    prog_ = xdp_program__open_file(path.c_str(), "xdp", nullptr);
    long err = libxdp_get_error(prog_);
    if (err) { prog_ = nullptr; ErrnoError(env, "xdp_program__open_file(" + path + ")", (int)err); return; }
    int e = xdp_program__attach(prog_, ifindex_, mode_, 0);
    if (e) {
      xdp_program__close(prog_);
      prog_ = nullptr;
      ErrnoError(env, std::string("xdp_program__attach(") + ifname_ + ", " + mode + ")", e);
      return;
    }
    attached_ = true;
    struct bpf_object* obj = xdp_program__bpf_obj(prog_);
    xsks_fd_ = bpf_object__find_map_fd_by_name(obj, "xsks_map");
    mac_fd_ = bpf_object__find_map_fd_by_name(obj, "owned_macs");
    ip4_fd_ = bpf_object__find_map_fd_by_name(obj, "owned_ip4");
    ip6_fd_ = bpf_object__find_map_fd_by_name(obj, "owned_ip6");
    snm_fd_ = bpf_object__find_map_fd_by_name(obj, "owned_snm");
    cnt_fd_ = bpf_object__find_map_fd_by_name(obj, "xs_counters");
    police_fd_ = bpf_object__find_map_fd_by_name(obj, "xs_police");
    struct xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex_);
    if (!libxdp_get_error(mp) && mp) {
      dispatcher_ = !xdp_multiprog__is_legacy(mp);
      xdp_multiprog__close(mp);
    }
    if (xsks_fd_ < 0 || mac_fd_ < 0 || ip4_fd_ < 0 || ip6_fd_ < 0 || snm_fd_ < 0) {
      DoDetachLocked();
      TypeErr(env, "XDP object lacks the xdpstack maps");
    }
  }

  ~Program() override { DoDetach(); }

  int xsks_fd() const { return xsks_fd_; }

 private:
  void DoDetach() {
    std::lock_guard<std::mutex> lock(g_xdp_mu);
    DoDetachLocked();
  }
  void DoDetachLocked() {
    if (prog_) {
      if (attached_) xdp_program__detach(prog_, ifindex_, mode_, 0);
      xdp_program__close(prog_);
      prog_ = nullptr;
    }
    attached_ = false;
    xsks_fd_ = mac_fd_ = ip4_fd_ = ip6_fd_ = snm_fd_ = cnt_fd_ = police_fd_ = -1;
  }

  // mapUpdate(kind 0=mac 1=ip4 2=ip6 3=solicited-node group, key: Uint8Array (6 / 4 network order /
  // 16 / the group's last 4 bytes), vlan, add)
  Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!prog_) return TypeErr(env, "program detached");
    if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsTypedArray() || !info[2].IsNumber())
      return TypeErr(env, "mapUpdate(kind, key, vlan, add)");
    int kind = info[0].As<Napi::Number>().Int32Value();
    Napi::Uint8Array key = info[1].As<Napi::Uint8Array>();
    uint32_t vlan = info[2].As<Napi::Number>().Uint32Value();
    bool add = info[3].ToBoolean();
    if (vlan > 4095) return TypeErr(env, "vlan must be 0..4095");
    uint8_t one = 1;
    int fd, r;
    union { xs_mac_key m; xs_ip4_key a4; xs_ip6_key a6; xs_snm_key g; } k;
    memset(&k, 0, sizeof k);
    if (kind == 0 && key.ByteLength() == 6) {
      memcpy(k.m.mac, key.Data(), 6); k.m.vlan = (uint16_t)vlan; fd = mac_fd_;
    } else if (kind == 1 && key.ByteLength() == 4) {
      memcpy(&k.a4.addr, key.Data(), 4); k.a4.vlan = vlan; fd = ip4_fd_;
    } else if (kind == 2 && key.ByteLength() == 16) {
      memcpy(k.a6.addr, key.Data(), 16); k.a6.vlan = vlan; fd = ip6_fd_;
    } else if (kind == 3 && key.ByteLength() == 4) {
      memcpy(k.g.tail, key.Data(), 4); k.g.vlan = vlan; fd = snm_fd_;
    } else {
      return TypeErr(env, "mapUpdate: bad kind or key length");
    }
    r = add ? bpf_map_update_elem(fd, &k, &one, BPF_ANY) : bpf_map_delete_elem(fd, &k);
    if (r && !(r == -ENOENT && !add)) return ErrnoError(env, add ? "bpf_map_update_elem" : "bpf_map_delete_elem", r);
    return Napi::Boolean::New(env, r == 0);
  }

  // police(which 0=SYN 1=ARP, intervalNs, burstNs): sets a policer of the program (interval 0 = off).
  Napi::Value Police(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!prog_) return TypeErr(env, "program detached");
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber())
      return TypeErr(env, "police(which, intervalNs, burstNs)");
    uint32_t k = info[0].As<Napi::Number>().Uint32Value();
    double iv = info[1].As<Napi::Number>().DoubleValue(), b = info[2].As<Napi::Number>().DoubleValue();
    if (k > XS_POLICE_ARP || !(iv >= 0) || !(b >= 0) || iv > 9.0e15 || b > 9.0e15)
      return TypeErr(env, "police: bad policer or value");
    if (police_fd_ < 0) return TypeErr(env, "XDP object lacks the policer map (rebuild: make -C driver)");
    xs_police_cfg c = {(unsigned long long)iv, (unsigned long long)b};
    int r = bpf_map_update_elem(police_fd_, &k, &c, BPF_ANY);
    if (r) return ErrnoError(env, "bpf_map_update_elem(xs_police)", r);
    return info.Env().Undefined();
  }

  // counters() -> [redirected, passed, SYNs policed, ARP policed] summed over CPUs
  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env, XS_CNT_N);
    int ncpu = libbpf_num_possible_cpus();
    for (uint32_t k = 0; k < XS_CNT_N; k++) {
      uint64_t sum = 0;
      if (prog_ && cnt_fd_ >= 0 && ncpu > 0) {
        uint64_t vals[ncpu];
        if (bpf_map_lookup_elem(cnt_fd_, &k, vals) == 0)
          for (int i = 0; i < ncpu; i++) sum += vals[i];
      }
      out.Set(k, Napi::Number::New(env, (double)sum));
    }
    return out;
  }

  Napi::Value Detach(const Napi::CallbackInfo& info) {
    DoDetach();
    return info.Env().Undefined();
  }
  Napi::Value AttachMode(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), mode_ == XDP_MODE_SKB ? "skb" : "native");
  }
  Napi::Value Dispatcher(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), dispatcher_); }
  Napi::Value XsksMapFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), xsks_fd_); }

  std::string ifname_;
  int ifindex_ = 0;
  enum xdp_attach_mode mode_ = XDP_MODE_NATIVE;
  struct xdp_program* prog_ = nullptr;
  bool attached_ = false;
  bool dispatcher_ = false;
  int xsks_fd_ = -1, mac_fd_ = -1, ip4_fd_ = -1, ip6_fd_ = -1, snm_fd_ = -1, cnt_fd_ = -1, police_fd_ = -1;
};

// ---- Xsk -----------------------------------------------------------------------------------
void FreeUmem(Napi::Env, void* data, size_t* len) {
  munmap(data, *len);
  delete len;
}

class Xsk : public Napi::ObjectWrap<Xsk> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Xsk",
                       {InstanceMethod("register", &Xsk::Register),
                        InstanceMethod("fill", &Xsk::Fill),
                        InstanceMethod("rx", &Xsk::Rx),
                        InstanceMethod("tx", &Xsk::Tx),
                        InstanceMethod("complete", &Xsk::Complete),
                        InstanceMethod("kick", &Xsk::Kick),
                        InstanceMethod("stats", &Xsk::Stats),
                        InstanceMethod("ringLevels", &Xsk::RingLevels),
                        InstanceMethod("pollStart", &Xsk::PollStart),
                        InstanceMethod("pollStop", &Xsk::PollStop),
                        InstanceMethod("close", &Xsk::Close),
                        InstanceMethod("reopen", &Xsk::Reopen),
                        InstanceAccessor("fd", &Xsk::Fd, nullptr),
                        InstanceAccessor("queue", &Xsk::Queue, nullptr),
                        InstanceAccessor("zeroCopy", &Xsk::ZeroCopy, nullptr),
                        InstanceAccessor("kickErrors", &Xsk::KickErrors, nullptr)});
  }

  // new Xsk({ ifname, queue, frameSize, frameCount, ringSize, zeroCopy: 0 auto|1 on|2 off, busyPoll })
  Xsk(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Xsk>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) { TypeErr(env, "Xsk(options)"); return; }
    Napi::Object o = info[0].As<Napi::Object>();
    std::string ifname = o.Get("ifname").ToString().Utf8Value();
    uint32_t queue = o.Get("queue").ToNumber().Uint32Value();
    frame_size_ = o.Get("frameSize").ToNumber().Uint32Value();
    uint32_t frame_count = o.Get("frameCount").ToNumber().Uint32Value();
    uint32_t ring = o.Get("ringSize").ToNumber().Uint32Value();
    int zc = o.Get("zeroCopy").ToNumber().Int32Value();
    busy_poll_ = o.Get("busyPoll").ToBoolean();
    if ((frame_size_ != 2048 && frame_size_ != 4096) || frame_count == 0 ||
        (uint64_t)frame_size_ * frame_count > 0xffffffffull || ring == 0 || (ring & (ring - 1))) {
      TypeErr(env, "Xsk: frameSize 2048|4096, frameCount*frameSize < 4 GiB, ringSize a power of two");
      return;
    }
    size_ = (size_t)frame_size_ * frame_count;
    area_ = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (area_ == MAP_FAILED) { area_ = nullptr; ErrnoError(env, "mmap UMEM", errno); return; }
    // The ArrayBuffer owns the mapping: it is unmapped only when JS can no longer see it.
    size_t* len = new size_t(size_);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, area_, size_, FreeUmem, len);
    Value().Set("umem", ab);

    ifname_ = ifname;
    queue_ = queue;
    ring_ = ring;
    zc_ = zc;
    Create(env);
  }

  ~Xsk() override { Cleanup(); }

 private:
  // Registers the UMEM area and creates the socket on (ifname_, queue_). On failure an exception
  // is pending and the object is left closed (the area stays mapped: JS owns it).
  bool Create(Napi::Env env) {
    struct xsk_umem_config ucfg = {};
    ucfg.fill_size = ring_;
    ucfg.comp_size = ring_;
    ucfg.frame_size = frame_size_;
    ucfg.frame_headroom = 0;
    ucfg.flags = 0;
    int r = xsk_umem__create(&umem_, area_, size_, &fill_, &comp_, &ucfg);
    if (r) { umem_ = nullptr; ErrnoError(env, "xsk_umem__create", r); return false; }

    struct xsk_socket_config scfg = {};
    scfg.rx_size = ring_;
    scfg.tx_size = ring_;
    scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
    scfg.bind_flags = XDP_USE_NEED_WAKEUP | (zc_ == 1 ? XDP_ZEROCOPY : zc_ == 2 ? XDP_COPY : 0);
    // Re-binding right after a close can fail with EBUSY for a short while: retry with backoff.
    for (int attempt = 0;; attempt++) {
      r = xsk_socket__create(&xsk_, ifname_.c_str(), queue_, umem_, &rx_, &tx_, &scfg);
      if (r != -EBUSY || attempt >= 8) break;
      usleep(5000u << attempt);
    }
    if (r) {
      xsk_ = nullptr;
      ErrnoError(env, "xsk_socket__create(" + ifname_ + ", queue " + std::to_string(queue_) + ")", r);
      Cleanup();
      return false;
    }
    fd_ = xsk_socket__fd(xsk_);
    struct xdp_options opts = {};
    socklen_t ol = sizeof opts;
    zero_copy_ = false;
    if (getsockopt(fd_, SOL_XDP, XDP_OPTIONS, &opts, &ol) == 0) zero_copy_ = opts.flags & XDP_OPTIONS_ZEROCOPY;
    if (busy_poll_) {
      int v = 1;
      setsockopt(fd_, SOL_SOCKET, SO_PREFER_BUSY_POLL, &v, sizeof v);
      v = 20;
      setsockopt(fd_, SOL_SOCKET, SO_BUSY_POLL, &v, sizeof v);
      v = kBurstMax;
      setsockopt(fd_, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &v, sizeof v);
    }
    return true;
  }

  // reopen() -> closes the socket and the UMEM registration and creates both again on the same
  // interface name and queue, over the same UMEM area (frame addresses stay valid). For a device
  // that disappeared and came back: the old socket is bound to an interface that no longer exists.
  Napi::Value Reopen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!area_) return TypeErr(env, "reopen: no UMEM area");
    Cleanup();
    if (!Create(env)) return env.Undefined();
    return Napi::Boolean::New(env, true);
  }

  void Cleanup() {
    StopPoll();
    if (xsk_) { xsk_socket__delete(xsk_); xsk_ = nullptr; }
    if (umem_) { xsk_umem__delete(umem_); umem_ = nullptr; }
    fd_ = -1;
    memset(&fill_, 0, sizeof fill_);
    memset(&comp_, 0, sizeof comp_);
    memset(&rx_, 0, sizeof rx_);
    memset(&tx_, 0, sizeof tx_);
  }

  void StopPoll() {
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (!poll_cb_.IsEmpty()) poll_cb_.Reset();
    if (async_ctx_) { napi_async_destroy(Env(), async_ctx_); async_ctx_ = nullptr; }
  }

  bool Open(Napi::Env env) {
    if (xsk_) return true;
    TypeErr(env, "AF_XDP socket is closed");
    return false;
  }

  // Wake the kernel so it processes the TX ring. Copy mode always needs it; zero-copy only when
  // the kernel asks (need_wakeup). Transient errors are expected and not reported.
  void DoKick() {
    if (!zero_copy_ || xsk_ring_prod__needs_wakeup(&tx_)) {
      for (int i = 0; i < 8; i++) {
        if (sendto(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) break;
        int e = errno;
        if (e == EAGAIN) { if (ProdLevel(&tx_) == 0) break; continue; }  // more left: kick again
        if (e == EBUSY || e == ENOBUFS || e == ENETDOWN) break;
        kick_errors_++;
        break;
      }
    }
  }

  // register(program | xsksMapFd) -> puts this socket in the XSKMAP entry of its queue: the map
  // of a Program of this environment, or an XSKMAP given by its fd (a program attached by another
  // thread of the process: fds are process-wide). The socket leaves the map when it is closed.
  Napi::Value Register(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    int map_fd = -1;
    if (info.Length() >= 1 && info[0].IsNumber()) {
      double v = info[0].As<Napi::Number>().DoubleValue();
      if (!(v >= 0 && v <= 0x7fffffff) || v != (double)(int)v) return TypeErr(env, "register: an XSKMAP fd is an integer >= 0");
      map_fd = (int)v;
      // The fd must be an XSKMAP with an entry for our queue: a stale or wrong number would
      // otherwise write our key and value into whatever map it names now.
      struct bpf_map_info mi = {};
      __u32 len = sizeof mi;
      int r = bpf_obj_get_info_by_fd(map_fd, &mi, &len);
      if (r) return ErrnoError(env, "register: fd " + std::to_string(map_fd) + " is not a BPF map", r);
      if (mi.type != BPF_MAP_TYPE_XSKMAP) return TypeErr(env, "register: the fd is a BPF map but not an XSKMAP");
      if (queue_ >= mi.max_entries) {
        return TypeErr(env, ("register: queue " + std::to_string(queue_) + " is beyond the XSKMAP's " +
                             std::to_string(mi.max_entries) + " entries").c_str());
      }
    } else if (info.Length() >= 1 && info[0].IsObject()) {
      AddonData* d = env.GetInstanceData<AddonData>();
      Napi::Object o = info[0].As<Napi::Object>();
      if (!d || !o.InstanceOf(d->program.Value())) return TypeErr(env, "register(program | xsksMapFd): not a Program");
      Program* p = Program::Unwrap(o);
      if (!p || p->xsks_fd() < 0) return TypeErr(env, "register: program is detached");
      map_fd = p->xsks_fd();
    } else {
      return TypeErr(env, "register(program | xsksMapFd)");
    }
    int r = xsk_socket__update_xskmap(xsk_, map_fd);
    if (r) return ErrnoError(env, "xsk_socket__update_xskmap", r);
    return env.Undefined();
  }

  // fill(addrs: Uint32Array, n) -> number put on the fill ring (a prefix of addrs)
  Napi::Value Fill(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    uint32_t* a; size_t alen;
    if (!GetU32Array(info[0], &a, &alen)) return TypeErr(env, "fill(Uint32Array, n)");
    uint32_t n = info[1].ToNumber().Uint32Value();
    if (n > alen) n = alen;
    uint32_t idx = 0;
    uint32_t got = xsk_ring_prod__reserve(&fill_, n, &idx);
    for (uint32_t i = 0; i < got; i++) *xsk_ring_prod__fill_addr(&fill_, idx + i) = a[i];
    if (got) xsk_ring_prod__submit(&fill_, got);
    if (busy_poll_ || xsk_ring_prod__needs_wakeup(&fill_))
      recvfrom(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
    return Napi::Number::New(env, got);
  }

  // rx(addrs: Uint32Array, lens: Uint32Array, max) -> n received descriptors
  Napi::Value Rx(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    uint32_t *a, *l; size_t alen, llen;
    if (!GetU32Array(info[0], &a, &alen) || !GetU32Array(info[1], &l, &llen)) return TypeErr(env, "rx(Uint32Array, Uint32Array, max)");
    uint32_t max = info[2].ToNumber().Uint32Value();
    if (max > alen) max = alen;
    if (max > llen) max = llen;
    uint32_t idx = 0;
    uint32_t got = xsk_ring_cons__peek(&rx_, max, &idx);
    if (!got && busy_poll_) {
      recvfrom(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
      got = xsk_ring_cons__peek(&rx_, max, &idx);
    }
    for (uint32_t i = 0; i < got; i++) {
      const struct xdp_desc* d = xsk_ring_cons__rx_desc(&rx_, idx + i);
      a[i] = (uint32_t)d->addr;
      l[i] = d->len;
    }
    if (got) xsk_ring_cons__release(&rx_, got);
    return Napi::Number::New(env, got);
  }

  // tx(addrs, lens, n) -> number queued on the TX ring (a prefix); kicks the kernel.
  Napi::Value Tx(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    uint32_t *a, *l; size_t alen, llen;
    if (!GetU32Array(info[0], &a, &alen) || !GetU32Array(info[1], &l, &llen)) return TypeErr(env, "tx(Uint32Array, Uint32Array, n)");
    uint32_t n = info[2].ToNumber().Uint32Value();
    if (n > alen) n = alen;
    if (n > llen) n = llen;
    uint32_t idx = 0;
    uint32_t got = xsk_ring_prod__reserve(&tx_, n, &idx);
    for (uint32_t i = 0; i < got; i++) {
      struct xdp_desc* d = xsk_ring_prod__tx_desc(&tx_, idx + i);
      d->addr = a[i];
      d->len = l[i];
      d->options = 0;
    }
    if (got) {
      xsk_ring_prod__submit(&tx_, got);
      DoKick();
    }
    return Napi::Number::New(env, got);
  }

  // complete(addrs: Uint32Array, max) -> n completed TX addresses
  Napi::Value Complete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    uint32_t* a; size_t alen;
    if (!GetU32Array(info[0], &a, &alen)) return TypeErr(env, "complete(Uint32Array, max)");
    uint32_t max = info[1].ToNumber().Uint32Value();
    if (max > alen) max = alen;
    uint32_t idx = 0;
    uint32_t got = xsk_ring_cons__peek(&comp_, max, &idx);
    for (uint32_t i = 0; i < got; i++) a[i] = (uint32_t)*xsk_ring_cons__comp_addr(&comp_, idx + i);
    if (got) xsk_ring_cons__release(&comp_, got);
    return Napi::Number::New(env, got);
  }

  // kick() -> number of descriptors still waiting in the TX ring after the kick
  Napi::Value Kick(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    if (ProdLevel(&tx_)) DoKick();
    return Napi::Number::New(env, ProdLevel(&tx_));
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    struct xdp_statistics s = {};
    socklen_t len = sizeof s;
    if (getsockopt(fd_, SOL_XDP, XDP_STATISTICS, &s, &len)) return ErrnoError(env, "getsockopt(XDP_STATISTICS)", errno);
    Napi::Object o = Napi::Object::New(env);
    o.Set("rxDropped", (double)s.rx_dropped);
    o.Set("rxInvalidDescs", (double)s.rx_invalid_descs);
    o.Set("txInvalidDescs", (double)s.tx_invalid_descs);
    o.Set("rxRingFull", (double)s.rx_ring_full);
    o.Set("rxFillRingEmptyDescs", (double)s.rx_fill_ring_empty_descs);
    o.Set("txRingEmptyDescs", (double)s.tx_ring_empty_descs);
    return o;
  }

  // ringLevels(out: Uint32Array(4)) -> fills [fill, rx, tx, completion] entries in use
  Napi::Value RingLevels(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t* a; size_t alen;
    if (!GetU32Array(info[0], &a, &alen) || alen < 4) return TypeErr(env, "ringLevels(Uint32Array(4))");
    a[0] = ProdLevel(&fill_);
    a[1] = ConsLevel(&rx_);
    a[2] = ProdLevel(&tx_);
    a[3] = ConsLevel(&comp_);
    return env.Undefined();
  }

  // pollStart(cb): cb() runs on the Node event loop whenever the socket is readable.
  Napi::Value PollStart(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsFunction()) return TypeErr(env, "pollStart(cb)");
    StopPoll();
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) return TypeErr(env, "no event loop");
    poll_cb_ = Napi::Persistent(info[0].As<Napi::Function>());
    napi_value name = Napi::String::New(env, "xdpstack:xsk");
    napi_async_init(env, nullptr, name, &async_ctx_);
    poll_ = new uv_poll_t;
    int r = uv_poll_init(loop, poll_, fd_);
    if (r) { delete poll_; poll_ = nullptr; return ErrnoError(env, "uv_poll_init", -r); }
    poll_->data = this;
    uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* h, int status, int events) {
      Xsk* self = static_cast<Xsk*>(h->data);
      if (!self || self->poll_cb_.IsEmpty()) return;
      Napi::Env env = self->Env();
      Napi::HandleScope scope(env);
      napi_value recv = env.Global();
      napi_value result;
      napi_status st = napi_make_callback(env, self->async_ctx_, recv, self->poll_cb_.Value(), 0, nullptr, &result);
      if (st == napi_pending_exception) {
        napi_value exc;
        napi_get_and_clear_last_exception(env, &exc);
        napi_fatal_exception(env, exc);
      }
    });
    return Napi::Boolean::New(env, true);
  }

  Napi::Value PollStop(const Napi::CallbackInfo& info) {
    StopPoll();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Cleanup();
    return info.Env().Undefined();
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
  Napi::Value Queue(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), queue_); }
  Napi::Value ZeroCopy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), zero_copy_); }
  Napi::Value KickErrors(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)kick_errors_); }

  void* area_ = nullptr;
  size_t size_ = 0;
  std::string ifname_;
  uint32_t queue_ = 0;
  uint32_t ring_ = 0;
  int zc_ = 0;
  uint32_t frame_size_ = 0;
  struct xsk_umem* umem_ = nullptr;
  struct xsk_socket* xsk_ = nullptr;
  struct xsk_ring_prod fill_ = {};
  struct xsk_ring_cons comp_ = {};
  struct xsk_ring_cons rx_ = {};
  struct xsk_ring_prod tx_ = {};
  int fd_ = -1;
  bool zero_copy_ = false;
  bool busy_poll_ = false;
  uint64_t kick_errors_ = 0;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference poll_cb_;
  napi_async_context async_ctx_ = nullptr;
};

// removeProgram(ifname, name = 'xdpstack_xdp') -> number of our programs removed from ifname.
// Used at start-up to clear an attachment left by a process that died without detaching.
Napi::Value RemoveProgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return TypeErr(env, "removeProgram(ifname[, name])");
  std::string ifname = info[0].As<Napi::String>().Utf8Value();
  std::string name = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : kProgName;
  int ifindex = if_nametoindex(ifname.c_str());
  if (!ifindex) return ErrnoError(env, "if_nametoindex(" + ifname + ")", errno);
  int removed = 0;
  std::lock_guard<std::mutex> lock(g_xdp_mu);
  for (int round = 0; round < 16; round++) {
    struct xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
    if (!mp || libxdp_get_error(mp)) break;
    bool found = false;
    int r = 0;
    if (xdp_multiprog__is_legacy(mp)) {
      struct xdp_program* p = xdp_multiprog__main_prog(mp);
      if (p && name == xdp_program__name(p)) { found = true; r = xdp_multiprog__detach(mp); }
    } else {
      enum xdp_attach_mode mode = xdp_multiprog__attach_mode(mp);
      for (struct xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp)) {
        if (name == xdp_program__name(p)) {
          found = true;
          r = xdp_program__detach(p, ifindex, mode, 0);
          break;
        }
      }
    }
    xdp_multiprog__close(mp);
    if (!found) break;
    if (r) return ErrnoError(env, "detaching stale " + name + " from " + ifname, r);
    removed++;
  }
  return Napi::Number::New(env, removed);
}

// attachedPrograms(ifname) -> names of XDP programs on the interface ([] when none).
Napi::Value AttachedPrograms(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  if (info.Length() < 1 || !info[0].IsString()) return TypeErr(env, "attachedPrograms(ifname)");
  int ifindex = if_nametoindex(info[0].As<Napi::String>().Utf8Value().c_str());
  if (!ifindex) return out;
  std::lock_guard<std::mutex> lock(g_xdp_mu);
  struct xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (!mp || libxdp_get_error(mp)) return out;
  uint32_t i = 0;
  if (xdp_multiprog__is_legacy(mp)) {
    struct xdp_program* p = xdp_multiprog__main_prog(mp);
    if (p) out.Set(i++, Napi::String::New(env, xdp_program__name(p)));
  } else {
    for (struct xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
      out.Set(i++, Napi::String::New(env, xdp_program__name(p)));
  }
  xdp_multiprog__close(mp);
  return out;
}

Napi::Value LastLog(const Napi::CallbackInfo& info) {
  Napi::String s = Napi::String::New(info.Env(), t_log);
  if (info.Length() > 0 && info[0].ToBoolean()) t_log.clear();
  return s;
}

// Runs once per environment that loads the addon (main thread, each worker).
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  std::call_once(g_print_once, [] {
    libxdp_set_print(XdpPrint);
    libbpf_set_print(BpfPrint);
  });
  Napi::Function program = Program::Init(env);
  AddonData* data = new AddonData();
  data->program = Napi::Persistent(program);
  env.SetInstanceData<AddonData>(data);  // deleted with the environment
  exports.Set("Program", program);
  exports.Set("Xsk", Xsk::Init(env));
  exports.Set("removeProgram", Napi::Function::New(env, RemoveProgram));
  exports.Set("attachedPrograms", Napi::Function::New(env, AttachedPrograms));
  exports.Set("lastLog", Napi::Function::New(env, LastLog));
  exports.Set("burstMax", Napi::Number::New(env, kBurstMax));
  exports.Set("maxQueues", Napi::Number::New(env, XDPSTACK_MAX_QUEUES));
  return exports;
}

}  // namespace

NODE_API_MODULE(xdpstack_native, Init)
