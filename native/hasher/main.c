/* ddt-hash: the remote helper's streaming hasher. One process reads a device or file
 * sequentially, in large reads (O_DIRECT where the target takes it, so the bytes come from the
 * device, not the page cache) on a reader thread while the main thread hashes, and prints one
 * checksum per unit of every block and one per block: no process per block or per chunk.
 *
 *   ddt-hash ranges FILE UNIT UNITALGO ALGO [buffered] [sync=PATH]
 *                             stdin: lines "OFFSET LENGTH BLOCK", each a run of blocks of BLOCK
 *                             bytes (the last one shorter). `buffered`: through the page cache,
 *                             for a source that may well be there already (O_DIRECT would read
 *                             it from the disk again). `sync=PATH`: fsync PATH first: a
 *                             written block's flush and its read-back in one process
 *   ddt-hash version
 *   ddt-hash pipes             raise the pipes on stdin and stdout to 1 MiB (F_SETPIPE_SZ; what
 *                             is not a pipe, or refuses, is left as it is): for the helper's
 *                             shell, whose dd processes inherit them
 *
 * For each block, in order: when it spans more than one unit of UNIT bytes, one line per unit
 * (`OK <hex>` of UNITALGO), then one line for the whole block (`OK <hex>` of ALGO). A unit or
 * block that could not be read whole is `ERR <text>` instead: the count of lines never changes,
 * so the reader of the answers keeps its place. Algos: xxh64 (as xxhsum -H64 prints it), sha256
 * (as sha256sum prints it). Exit 2: bad arguments or input (nothing printed); exit 4: the
 * fsync of sync=PATH failed (nothing printed). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hashes.h"
#include "reader.h"

static char out[1 << 16];
static size_t outlen;

static void flush_out(void) {
  for (size_t done = 0; done < outlen;) {
    ssize_t w = write(1, out + done, outlen - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) exit(3); /* nobody reads the answers any more */
    done += (size_t)w;
  }
  outlen = 0;
}

static void line(const char *fmt, const char *arg) {
  if (outlen + 200 > sizeof out) flush_out();
  int n = snprintf(out + outlen, sizeof out - outlen, fmt, arg);
  outlen += (size_t)n < sizeof out - outlen ? (size_t)n : sizeof out - outlen - 1;
}

static void usage(const char *why) {
  fprintf(stderr, "ddt-hash: %s\n", why);
  exit(2);
}

static int parse_u64(const char *s, uint64_t *v) {
  if (!*s || strlen(s) > 18 || strspn(s, "0123456789") != strlen(s)) return 0;
  *v = strtoull(s, 0, 10);
  return 1;
}

/* The runs on stdin: "OFFSET LENGTH BLOCK" per line, all numbers, LENGTH and BLOCK > 0. */
static struct run *read_runs(size_t *count) {
  size_t cap = 64, n = 0;
  struct run *runs = malloc(cap * sizeof *runs);
  char buf[256];
  while (fgets(buf, sizeof buf, stdin)) {
    char *f[4] = {0};
    int k = 0;
    for (char *tok = strtok(buf, " \n"); tok && k < 4; tok = strtok(0, " \n")) f[k++] = tok;
    if (k == 0) continue;
    struct run r;
    if (k != 3 || !parse_u64(f[0], &r.offset) || !parse_u64(f[1], &r.length) || !parse_u64(f[2], &r.block) || !r.length || !r.block)
      usage("bad range line (want OFFSET LENGTH BLOCK)");
    if (n == cap) runs = realloc(runs, (cap *= 2) * sizeof *runs);
    runs[n++] = r;
  }
  *count = n;
  return runs;
}

/* Where the hashing is inside the current block. */
struct cursor {
  uint64_t pos, block_end, unit_end, unit;
  int units; /* the block spans more than one unit: unit lines are printed */
  const char *unit_bad, *block_bad;
  struct hasher u, b;
};

static void start_block(struct cursor *c, uint64_t end, int ualgo, int algo) {
  c->block_end = end;
  c->units = end - c->pos > c->unit;
  c->unit_end = c->units ? c->pos + c->unit : end;
  c->unit_bad = c->block_bad = 0;
  hasher_init(&c->u, ualgo);
  hasher_init(&c->b, algo);
}

static void emit(const struct hasher *h, const char *bad) {
  char hex[65];
  if (bad) line("ERR %s\n", bad);
  else line("OK %s\n", hasher_hex(h, hex));
}

/* fsync PATH (a device or file opened read-only: Linux flushes it all the same), or exit 4. */
static void flush_path(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) {
    fprintf(stderr, "ddt-hash: flush of %s failed: %s\n", path, strerror(errno));
    exit(4);
  }
  close(fd);
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "pipes")) {
    fcntl(0, F_SETPIPE_SZ, 1 << 20);
    fcntl(1, F_SETPIPE_SZ, 1 << 20);
    return 0;
  }
  if (argc == 2 && !strcmp(argv[1], "version")) {
    printf("ddt-hash 1 sha256=%s\n", sha256_impl());
    return 0;
  }
  uint64_t unit;
  int ualgo, algo;
  int buffered = 0;
  const char *sync = 0;
  if (argc < 6 || argc > 8 || strcmp(argv[1], "ranges")) usage("usage: ddt-hash ranges FILE UNIT UNITALGO ALGO [buffered] [sync=PATH] < runs");
  for (int i = 6; i < argc; i++) {
    if (!strcmp(argv[i], "buffered") && !buffered) buffered = 1;
    else if (!strncmp(argv[i], "sync=/", 6) && !sync) sync = argv[i] + 5;
    else usage("bad option (want buffered or sync=PATH)");
  }
  if (!parse_u64(argv[3], &unit) || !unit) usage("bad unit");
  if ((ualgo = algo_of(argv[4])) < 0 || (algo = algo_of(argv[5])) < 0) usage("unknown algo (xxh64|sha256)");
  size_t nruns;
  struct run *runs = read_runs(&nruns);
  if (sync) flush_path(sync);
  struct reader *rd = reader_start(argv[2], runs, nruns, buffered);
  if (!rd) usage("out of memory or threads");
  struct cursor c;
  for (size_t i = 0; i < nruns; i++) {
    uint64_t end = runs[i].offset + runs[i].length;
    c.pos = runs[i].offset;
    c.unit = unit;
    start_block(&c, c.pos + runs[i].block < end ? c.pos + runs[i].block : end, ualgo, algo);
    while (c.pos < end) {
      struct chunk ch = reader_next(rd);
      const unsigned char *p = ch.data;
      for (uint64_t left = ch.length; left > 0;) {
        uint64_t take = c.unit_end - c.pos < left ? c.unit_end - c.pos : left;
        uint64_t at = ch.length - left; /* bytes of the piece before this stretch */
        if (at + take > ch.valid && at < ch.valid) take = ch.valid - at; /* the good bytes first */
        if (at >= ch.valid) c.unit_bad = c.block_bad = ch.error;
        /* A unit read whole is hashed even when an earlier one of its block was not. */
        int u = c.units && !c.unit_bad, b = !c.block_bad;
        if (u && b) hasher_update2(&c.u, &c.b, p, take);
        else if (u) hasher_update(&c.u, p, take);
        else if (b) hasher_update(&c.b, p, take);
        p += take, left -= take, c.pos += take;
        if (c.pos < c.unit_end) continue;
        if (c.units) emit(&c.u, c.unit_bad);
        c.unit_bad = 0;
        hasher_init(&c.u, ualgo);
        if (c.pos < c.block_end) {
          c.unit_end = c.pos + unit < c.block_end ? c.pos + unit : c.block_end;
          continue;
        }
        emit(&c.b, c.block_bad);
        flush_out();
        if (c.pos < end) start_block(&c, c.pos + runs[i].block < end ? c.pos + runs[i].block : end, ualgo, algo);
      }
      reader_done(rd);
    }
  }
  flush_out();
  return 0;
}
