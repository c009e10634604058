"""Overrides of a tiny ``shapes`` run (seconds on a CPU), shared by end-to-end tests."""

TINY_SHAPES = [
    "data.n_samples=120",
    "data.image_size=16",
    "data.audio_length=256",
    "eval.l2_grid=[0.01]",
    "eval.retrieval_ks=[1]",
    "trainer.batch_size=32",
]
