/* _pyinit.c: the two symbols the bindings' shared library adds to the C runtime.
 *
 * setuptools builds the runtime (runtimes/c/src + kernels/ref) as the extension module
 * dsedge.runtime._libdsedge, but Python never imports it: dsedge.runtime loads it with ctypes
 * and calls the public C ABI (include/dsedge.h), exactly what an app embeds. An extension
 * needs a PyInit_ symbol to exist, hence the stub (it returns NULL: importing the module is an
 * error by design). dsedge_py_source_hash() returns the hash of the C sources the library was
 * built from (runtimes/python/_build.py: source_hash), so the bindings can tell a stale
 * in-place build (editable install, sources edited since) from a current one. */
#ifndef DSEDGE_SOURCE_HASH
#define DSEDGE_SOURCE_HASH "unknown"
#endif

const char *dsedge_py_source_hash(void);
const char *dsedge_py_source_hash(void) { return DSEDGE_SOURCE_HASH; }

void *PyInit__libdsedge(void);
void *PyInit__libdsedge(void) { return 0; }
