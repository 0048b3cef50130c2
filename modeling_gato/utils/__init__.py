"""The lowest layer: what every long job and command needs, and nothing about Gato itself: locks, append-only
journals, atomic writes and provenance (`jobs`), and command-line value checks (`arguments`)."""
