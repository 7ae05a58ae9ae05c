{
  "targets": [
    {
      "target_name": "ddt_sparse",
      "sources": ["sparse.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
