"""`make bench`: the widget's performance figures against its targets (docs/benchmarks.md)."""
