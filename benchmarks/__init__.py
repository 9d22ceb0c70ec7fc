"""Load generator and benchmarks (run `bash benchmarks/run.sh`; see docs/benchmarks.md)."""
