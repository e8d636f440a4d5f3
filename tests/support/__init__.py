"""What the tests and the benchmarks share: the project copy, its environment, free ports,
real processes, throwaway databases and clusters."""
