"""Made-up but valid inputs for tries, tests and benchmarks: CIFAR-10 files and run records."""
