// ddt_sparse: the two system calls Node does not offer, for sparse files.
//   seek(fd, offset, whence)           lseek with SEEK_DATA (3) or SEEK_HOLE (4): the offset,
//                                      or -1 where there is no data (ENXIO) at or after offset
//   fallocate(fd, mode, offset, len)   fallocate(2): punch a hole (PUNCH_HOLE | KEEP_SIZE)
// Errors throw with the errno's name as `code` (EINVAL: the filesystem cannot).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <node_api.h>

static napi_value fail(napi_env env, int err) {
  char code[32];
  const char *name = err == EINVAL ? "EINVAL" : err == EOPNOTSUPP ? "EOPNOTSUPP" : err == EBADF ? "EBADF" : err == ENOSYS ? "ENOSYS" : "EIO";
  strncpy(code, name, sizeof code - 1);
  code[sizeof code - 1] = 0;
  napi_throw_error(env, code, strerror(err));
  return NULL;
}

static int args(napi_env env, napi_callback_info info, size_t want, double *out) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return 0;
  for (size_t i = 0; i < want; i++) {
    if (napi_get_value_double(env, argv[i], &out[i]) != napi_ok) return 0;
  }
  return 1;
}

static napi_value seek(napi_env env, napi_callback_info info) {
  double a[3];
  if (!args(env, info, 3, a)) {
    napi_throw_type_error(env, NULL, "seek(fd, offset, whence)");
    return NULL;
  }
  off_t r = lseek((int)a[0], (off_t)a[1], (int)a[2]);
  if (r < 0 && errno != ENXIO) return fail(env, errno);
  napi_value v;
  napi_create_double(env, r < 0 ? -1 : (double)r, &v);
  return v;
}

static napi_value falloc(napi_env env, napi_callback_info info) {
  double a[4];
  if (!args(env, info, 4, a)) {
    napi_throw_type_error(env, NULL, "fallocate(fd, mode, offset, length)");
    return NULL;
  }
  if (fallocate((int)a[0], (int)a[1], (off_t)a[2], (off_t)a[3]) != 0) return fail(env, errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "seek", NAPI_AUTO_LENGTH, seek, NULL, &f);
  napi_set_named_property(env, exports, "seek", f);
  napi_create_function(env, "fallocate", NAPI_AUTO_LENGTH, falloc, NULL, &f);
  napi_set_named_property(env, exports, "fallocate", f);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
