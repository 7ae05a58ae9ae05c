// A delay line between two network namespaces: what netem would do, for a machine without it.
//
//   delayline NETNS_A TUN_A NETNS_B TUN_B DELAY_US [BURST_LOG GAP_US]
//
// Attaches to two persistent TUN devices (made beforehand with `ip tuntap add … mode tun`, one
// in each namespace, given as /run/netns/NAME paths) and forwards every IP packet read from one
// to the other DELAY_US microseconds later, in both directions: one way of the link each. The
// rate is not limited here; `tbf` on each TUN device's egress does that before the packet gets
// here, so a packet is serialised first and then propagates, as on a real link.
//
// Packets wait in a FIFO per direction (the delay is constant, so due times are in order); a
// full FIFO drops, like a router's queue. One thread serves both directions (a thread each
// cost ≈ 1.7 × the CPU here: twice the wake-ups). It asks for SCHED_FIFO so that busy ssh/ddt
// processes on the same cores do not add their time slices to the link's latency (without the
// privilege it runs as it is). The caller measures the CPU from /proc/PID/stat; it includes
// the receiving stack's work that a TUN write runs in the writer's context.
//
// BURST_LOG: the start of bulk data on the wire, for "time to first data byte". Set-up traffic
// (key exchange, commands, a small upload) comes in exchanges separated by at least a round
// trip with no full-size packet; bulk data, even in TCP slow start, sends its next full-size
// packet within a round trip. So a "burst" is a run of full-size packets (≥ 1000 bytes) with
// no gap longer than GAP_US between them, and the first time a burst reaches 1 MiB we log
// "DIR START_US CROSS_US" (DIR: ab or ba; times in CLOCK_MONOTONIC microseconds, the clock
// of Node's process.hrtime): START_US is when its first packet came through.
//
// SIGTERM/SIGINT: print the counters on stderr and exit; SIGUSR1: print them and go on. The
// process ends with its parent (PR_SET_PDEATHSIG), so a killed benchmark leaves no forwarder.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 8192 /* per direction: 100 ms of 650 Mbit/s in full-size packets */
#define SLOT_BYTES 2048 /* TUN MTU is 1500; a larger packet would be truncated, never split */
#define FULL_SIZE 1000
#define BURST_BYTES (1u << 20)
#define TICK_NS 500000u

struct slot {
  uint64_t due_ns;
  uint32_t len;
  unsigned char data[SLOT_BYTES];
};

struct dir {
  const char *name;
  int in, out;
  uint64_t delay_ns;
  struct slot *ring;
  uint32_t head, count, peak;
  uint64_t packets, bytes, dropped, write_errors, max_late_ns, late_1ms;
  uint64_t burst_start, burst_last, burst_bytes;
  int burst_logged;
};

static FILE *burst_log;
static uint64_t gap_ns;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "delayline: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int open_tun(const char *netns, const char *dev) {
  int ns = open(netns, O_RDONLY | O_CLOEXEC);
  if (ns < 0) die(netns);
  if (setns(ns, CLONE_NEWNET) < 0) die("setns");
  close(ns);
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die("/dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die(dev);
  return fd;
}

static void track_burst(struct dir *d, uint32_t len, uint64_t t) {
  if (!burst_log || len < FULL_SIZE) return;
  if (d->burst_bytes == 0 || t - d->burst_last > gap_ns) {
    d->burst_start = t;
    d->burst_bytes = 0;
    d->burst_logged = 0;
  }
  d->burst_last = t;
  d->burst_bytes += len;
  if (!d->burst_logged && d->burst_bytes >= BURST_BYTES) {
    d->burst_logged = 1;
    fprintf(burst_log, "%s %llu %llu\n", d->name, (unsigned long long)(d->burst_start / 1000), (unsigned long long)(t / 1000));
    fflush(burst_log);
  }
}

// Drain the input device; every packet is stamped with the time it was read.
static void take(struct dir *d) {
  static unsigned char spill[SLOT_BYTES];
  for (;;) {
    int full = d->count == SLOTS;
    struct slot *s = &d->ring[(d->head + d->count) % SLOTS];
    ssize_t n = read(d->in, full ? spill : s->data, SLOT_BYTES);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      die("read");
    }
    uint64_t t = now_ns();
    if (full) {
      d->dropped++;
      continue;
    }
    s->len = (uint32_t)n;
    s->due_ns = t + d->delay_ns;
    d->count++;
    if (d->count > d->peak) d->peak = d->count;
    track_burst(d, s->len, t);
  }
}

static void release(struct dir *d, uint64_t t) {
  while (d->count && d->ring[d->head].due_ns <= t) {
    struct slot *s = &d->ring[d->head];
    uint64_t late = t - s->due_ns;
    if (late > d->max_late_ns) d->max_late_ns = late;
    if (late > 1000000) d->late_1ms++;
    // A TUN write hands the packet to the other namespace's stack at once; it fails only for
    // a malformed packet or a device going away (counted, never retried).
    if (write(d->out, s->data, s->len) < 0) d->write_errors++;
    d->packets++;
    d->bytes += s->len;
    d->head = (d->head + 1) % SLOTS;
    d->count--;
  }
}

static int rt;

static void report(struct dir *d) {
  for (int i = 0; i < 2; i++)
    fprintf(stderr,
            "delayline %s: packets %llu bytes %llu dropped %llu write_errors %llu peak_queue %u max_late_us %llu late_over_1ms %llu"
            " sched %s\n",
            d[i].name, (unsigned long long)d[i].packets, (unsigned long long)d[i].bytes, (unsigned long long)d[i].dropped,
            (unsigned long long)d[i].write_errors, d[i].peak, (unsigned long long)(d[i].max_late_ns / 1000),
            (unsigned long long)d[i].late_1ms, rt ? "fifo" : "other");
}

static volatile sig_atomic_t stop_now, report_now;
static void on_signal(int sig) {
  if (sig == SIGUSR1) report_now = 1;
  else stop_now = 1;
}

int main(int argc, char **argv) {
  if (argc != 6 && argc != 8) {
    fprintf(stderr, "usage: delayline NETNS_A TUN_A NETNS_B TUN_B DELAY_US [BURST_LOG GAP_US]\n");
    return 2;
  }
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1) return 1; /* the parent died before the line above */
  uint64_t delay = strtoull(argv[5], NULL, 10) * 1000u - TICK_NS / 2;
  if (argc == 8) {
    burst_log = fopen(argv[6], "a");
    if (!burst_log) die(argv[6]);
    gap_ns = strtoull(argv[7], NULL, 10) * 1000u;
  }
  int a = open_tun(argv[1], argv[2]);
  int b = open_tun(argv[3], argv[4]);
  static struct dir d[2];
  d[0] = (struct dir){.name = "ab", .in = a, .out = b, .delay_ns = delay};
  d[1] = (struct dir){.name = "ba", .in = b, .out = a, .delay_ns = delay};
  for (int i = 0; i < 2; i++) {
    // Touched now: page faults while forwarding would add to the delay and the CPU measured.
    if (!(d[i].ring = malloc(sizeof(struct slot) * SLOTS))) die("malloc");
    memset(d[i].ring, 0, sizeof(struct slot) * SLOTS);
  }

  struct sched_param sp = {.sched_priority = 10};
  rt = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  printf("ready\n");
  fflush(stdout);

  // While the line holds packets it wakes on a fixed grid of TICK_NS, drains both devices and
  // sends what is due: one wake-up per tick, not per packet (per-packet wake-ups cost more CPU
  // than the forwarding itself in a VM). An idle line blocks in ppoll() and reads a packet at
  // once; a busy one reads at each tick what came through during the tick before. A packet
  // leaves at the first tick at or after its stamp + delay - TICK/2: sparse traffic (a ping, an
  // SSH exchange) is held the delay ± half a tick, a busy stream the delay + 0 to 1 tick; a
  // late wake-up (the CPU was busy elsewhere) only ever adds.
  struct pollfd pf[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
  while (!stop_now) {
    if (report_now) {
      report_now = 0;
      report(d);
    }
    if (d[0].count == 0 && d[1].count == 0) {
      if (ppoll(pf, 2, NULL, NULL) < 0 && errno != EINTR) die("ppoll");
      if ((pf[0].revents | pf[1].revents) & (POLLERR | POLLHUP | POLLNVAL)) {
        fprintf(stderr, "delayline: a TUN device went away\n");
        break;
      }
    } else {
      uint64_t tick = (now_ns() / TICK_NS + 1) * TICK_NS;
      struct timespec ts = {.tv_sec = (time_t)(tick / 1000000000u), .tv_nsec = (long)(tick % 1000000000u)};
      if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) continue; /* a signal */
    }
    take(&d[0]);
    take(&d[1]);
    uint64_t t = now_ns();
    release(&d[0], t);
    release(&d[1], t);
  }
  report(d);
  return 0;
}
