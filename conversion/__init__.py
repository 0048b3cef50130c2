"""Converters: bring in what users already have (datasets, configs, checkpoints) in modeling_gato's formats.

| module | from | to |
|---|---|---|
| `conversion.convert_minari_dataset` | Minari datasets (Farama's offline-RL format) | our episode directory (`collect`'s layout) |
| `conversion.convert_jat_dataset` | JAT's Hub dataset layout (one episode per row) | our episode directory |
| `conversion.convert_keras_gato_weights` | OrigamiDream/gato (gato-tf) `.weights.h5` | a `save_pretrained` directory |
| `conversion.convert_gato_torch_config` | gato-torch's `GatoConfig` / README keyword arguments | our `GatoConfig` |

Every command has `--help`: `python -m conversion.<module> --help`.
"""
