"""Stage 3, acting: vectorised closed-loop rollouts of any policy in real environments (`rollouts`) and the
baseline policies Gato is measured beside (`baselines`: random, the environment's expert, 1-nearest-neighbour).
The Gato agent itself (`modeling_gato.agent`) ships with the model and lives at the package root."""
