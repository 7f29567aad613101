/*
 * iscsi-load: READ(16)/WRITE(16) load against one iSCSI LUN with libiscsi's asynchronous API, in the
 * shape of libiscsi's iscsi-perf (N commands in flight, fixed transfer size, random or sequential
 * LBAs) but for writes as well: iscsi-perf 1.19 only reads. Used by `npm run bench iscsi`.
 *
 *   iscsi-load --op read|write [--random] [--depth N] [--bytes N] [--seconds S] [--pass] URL
 *     --depth N    commands in flight (default 32)
 *     --bytes N    transfer size per command, a multiple of the LUN's block size (default 4096)
 *     --seconds S  run time (default 10)
 *     --random     random LBAs aligned to the transfer size (default: sequential, wrapping)
 *     --pass       one sequential pass over the whole LUN instead of a timed run (fills a LUN);
 *                  --seconds then bounds it (unfinished in time: an error)
 *
 * Prints one JSON line: op, pattern, depth, bytes, block_size, capacity, ops, errors, seconds and
 * per-second samples of completed commands. Exit 0 when no command failed.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define MAX_SAMPLES 3600

struct load {
  struct iscsi_context *iscsi;
  int lun;
  int write;
  int random;
  int pass;
  uint32_t block_size;
  uint64_t blocks;       /* capacity in blocks */
  uint32_t xfer_blocks;  /* blocks per command */
  uint64_t next_lba;     /* sequential position */
  uint64_t slots;        /* transfer-sized slots in the LUN */
  unsigned char *data;   /* write payload */
  int in_flight;
  int stopping;
  uint64_t ops, errors, issued;
  uint64_t samples[MAX_SAMPLES];
  int nsamples;
  char err[256];
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rnd64(void) {
  return ((uint64_t)(uint32_t)random() << 31) ^ (uint64_t)(uint32_t)random();
}

static void issue(struct load *l);

static void done_cb(struct iscsi_context *iscsi, int status, void *command_data, void *private_data) {
  struct load *l = private_data;
  struct scsi_task *task = command_data;
  (void)iscsi;
  l->in_flight--;
  if (status == SCSI_STATUS_GOOD) {
    l->ops++;
  } else {
    l->errors++;
    if (!l->err[0]) snprintf(l->err, sizeof l->err, "%s failed: status %d %s", l->write ? "WRITE16" : "READ16", status, iscsi_get_error(l->iscsi));
    l->stopping = 1;
  }
  if (task) scsi_free_scsi_task(task);
  if (!l->stopping) issue(l);
}

/* Queues one command at the next LBA (random: aligned to the transfer size). */
static void issue(struct load *l) {
  uint64_t lba;
  if (l->random) {
    lba = (rnd64() % l->slots) * l->xfer_blocks;
  } else {
    if (l->next_lba + l->xfer_blocks > l->blocks) {
      if (l->pass) { l->stopping = 1; return; }
      l->next_lba = 0;
    }
    lba = l->next_lba;
    l->next_lba += l->xfer_blocks;
  }
  uint32_t len = l->xfer_blocks * l->block_size;
  struct scsi_task *t = l->write
    ? iscsi_write16_task(l->iscsi, l->lun, lba, l->data, len, l->block_size, 0, 0, 0, 0, 0, done_cb, l)
    : iscsi_read16_task(l->iscsi, l->lun, lba, len, l->block_size, 0, 0, 0, 0, 0, done_cb, l);
  if (!t) {
    l->errors++;
    if (!l->err[0]) snprintf(l->err, sizeof l->err, "could not queue a command: %s", iscsi_get_error(l->iscsi));
    l->stopping = 1;
    return;
  }
  l->in_flight++;
  l->issued++;
}

static void usage(void) {
  fprintf(stderr, "usage: iscsi-load --op read|write [--random] [--depth N] [--bytes N] [--seconds S] [--pass] URL\n");
  exit(2);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
    { "op", required_argument, 0, 'o' }, { "random", no_argument, 0, 'r' }, { "depth", required_argument, 0, 'd' },
    { "bytes", required_argument, 0, 'b' }, { "seconds", required_argument, 0, 's' }, { "pass", no_argument, 0, 'p' },
    { 0, 0, 0, 0 },
  };
  struct load *l = calloc(1, sizeof *l);
  int depth = 32;
  long bytes = 4096;
  double seconds = 10;
  const char *op = NULL;
  int c;
  if (!l) return 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case 'o': op = optarg; break;
      case 'r': l->random = 1; break;
      case 'd': depth = atoi(optarg); break;
      case 'b': bytes = atol(optarg); break;
      case 's': seconds = atof(optarg); break;
      case 'p': l->pass = 1; break;
      default: usage();
    }
  }
  if (!op || optind != argc - 1 || depth < 1 || depth > 1024 || bytes <= 0 || seconds <= 0 || seconds > MAX_SAMPLES) usage();
  if (strcmp(op, "read") && strcmp(op, "write")) usage();
  l->write = !strcmp(op, "write");
  if (l->pass && l->random) { fprintf(stderr, "iscsi-load: --pass is sequential\n"); return 2; }
  srandom((unsigned)time(NULL) ^ (unsigned)getpid());

  l->iscsi = iscsi_create_context("iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-load");
  if (!l->iscsi) { fprintf(stderr, "iscsi-load: no context\n"); return 1; }
  struct iscsi_url *url = iscsi_parse_full_url(l->iscsi, argv[optind]);
  if (!url) { fprintf(stderr, "iscsi-load: bad URL %s: %s\n", argv[optind], iscsi_get_error(l->iscsi)); return 2; }
  iscsi_set_targetname(l->iscsi, url->target);
  iscsi_set_session_type(l->iscsi, ISCSI_SESSION_NORMAL);
  iscsi_set_header_digest(l->iscsi, ISCSI_HEADER_DIGEST_NONE_CRC32C);
  if (iscsi_full_connect_sync(l->iscsi, url->portal, url->lun) != 0) {
    fprintf(stderr, "iscsi-load: login failed: %s\n", iscsi_get_error(l->iscsi));
    return 1;
  }
  l->lun = url->lun;
  struct scsi_task *rc = iscsi_readcapacity16_sync(l->iscsi, l->lun);
  struct scsi_readcapacity16 *cap = rc && rc->status == SCSI_STATUS_GOOD ? scsi_datain_unmarshall(rc) : NULL;
  if (!cap) { fprintf(stderr, "iscsi-load: READ CAPACITY(16) failed: %s\n", iscsi_get_error(l->iscsi)); return 1; }
  l->block_size = cap->block_length;
  l->blocks = cap->returned_lba + 1;
  scsi_free_scsi_task(rc);
  if (bytes % l->block_size) { fprintf(stderr, "iscsi-load: --bytes %ld is not a multiple of the block size %u\n", bytes, l->block_size); return 2; }
  l->xfer_blocks = bytes / l->block_size;
  l->slots = l->blocks / l->xfer_blocks;
  if (!l->slots) { fprintf(stderr, "iscsi-load: LUN smaller than one transfer\n"); return 2; }
  l->data = malloc(bytes);
  if (!l->data) return 1;
  for (long i = 0; i < bytes; i++) l->data[i] = (unsigned char)random();

  double t0 = now_s(), end = t0 + seconds, next_sample = t0 + 1;
  uint64_t last_ops = 0, ops_end = 0;
  int ended = 0;
  for (int i = 0; i < depth && !l->stopping; i++) issue(l);
  while (l->in_flight > 0) {
    double t = now_s();
    if (!l->pass && t >= end && !ended) { ended = 1; ops_end = l->ops; l->stopping = 1; }
    /* A pass is bounded by --seconds too: unfinished by then is an error. */
    if (l->pass && t >= end && !l->stopping) {
      l->stopping = 1;
      l->errors++;
      snprintf(l->err, sizeof l->err, "pass not finished within %.0f s", seconds);
    }
    /* Commands in flight at the stop complete first (bounded: 10 s past the end). */
    if (t >= end + 10 && !l->pass) { snprintf(l->err, sizeof l->err, "%d commands still in flight 10 s after the end", l->in_flight); l->errors++; break; }
    if (t >= next_sample && l->nsamples < MAX_SAMPLES) { l->samples[l->nsamples++] = l->ops - last_ops; last_ops = l->ops; next_sample += 1; }
    struct pollfd pfd = { .fd = iscsi_get_fd(l->iscsi), .events = iscsi_which_events(l->iscsi) };
    int n = poll(&pfd, 1, 100);
    if (n < 0 && errno != EINTR) { snprintf(l->err, sizeof l->err, "poll: %s", strerror(errno)); l->errors++; break; }
    if (iscsi_service(l->iscsi, n > 0 ? pfd.revents : 0) < 0) {
      snprintf(l->err, sizeof l->err, "iscsi_service: %s", iscsi_get_error(l->iscsi));
      l->errors++;
      break;
    }
  }
  /* The measured interval: to the stop (commands completed by then), or to the end of a pass. */
  double elapsed = (l->pass ? now_s() : end) - t0;
  uint64_t ops = l->pass || !ended ? l->ops : ops_end;
  for (char *p = l->err; *p; p++) if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = '\'';
  printf("{\"op\":\"%s\",\"pattern\":\"%s\",\"depth\":%d,\"bytes\":%ld,\"block_size\":%u,\"capacity\":%llu,"
         "\"ops\":%llu,\"errors\":%llu,\"seconds\":%.6f,\"samples\":[",
         l->write ? "write" : "read", l->random ? "random" : "sequential", depth, bytes, l->block_size,
         (unsigned long long)(l->blocks * l->block_size), (unsigned long long)ops, (unsigned long long)l->errors, elapsed);
  for (int i = 0; i < l->nsamples; i++) printf("%s%llu", i ? "," : "", (unsigned long long)l->samples[i]);
  printf("]%s%s%s}\n", l->err[0] ? ",\"error\":\"" : "", l->err[0] ? l->err : "", l->err[0] ? "\"" : "");
  if (!l->errors) iscsi_logout_sync(l->iscsi);
  iscsi_destroy_url(url);
  iscsi_destroy_context(l->iscsi);
  free(l->data);
  int failed = l->errors != 0;
  free(l);
  return failed;
}
