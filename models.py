"""
The model registry: model_type -> a builder from train.py's config or a checkpoint's model_args.
Each model module is imported only when its type is built (mamba.py never at import of train.py).
"""
import dataclasses
import importlib


def gpt_config(cfg, vocab_size, block_size):
    """GPTConfig from the train config: every GPTConfig field that is also a config key."""
    from model import GPTConfig
    return GPTConfig(vocab_size=vocab_size, block_size=block_size,
                     **{f.name: cfg[f.name] for f in dataclasses.fields(GPTConfig) if f.name in cfg
                        and f.name not in ('vocab_size', 'block_size')})


def mamba_config(cfg, vocab_size, block_size):
    from mamba import MambaConfig
    return MambaConfig(vocab_size=vocab_size, block_size=block_size, n_layer=cfg['n_layer'], n_embd=cfg['n_embd'],
                       d_state=cfg['mamba_d_state'], d_conv=cfg['mamba_d_conv'], expand=cfg['mamba_expand'],
                       bias=cfg['bias'], use_layer_norm=cfg['use_layer_norm'], tie_embeddings=cfg['tie_embeddings'],
                       freeze_token_embeddings=cfg['freeze_token_embeddings'], weight_init=cfg['weight_init'])


# model_type -> (module, model class, config class, config from (train cfg, vocab_size, block_size))
MODELS = {
    'gpt': ('model', 'GPT', 'GPTConfig', gpt_config),
    'mamba': ('mamba', 'MambaLM', 'MambaConfig', mamba_config),
}


def mamba_kernels_available(device):
    """mamba-ssm's CUDA kernels run here: a CUDA device and the package installed."""
    if not str(device).startswith('cuda'):
        return False
    try:
        import mamba_ssm  # noqa: F401
    except Exception:  # not installed, or built against another torch/CUDA
        return False
    return True


def finish(model, device):
    if getattr(model.config, 'model_type', 'gpt') == 'mamba' and mamba_kernels_available(device):
        model.use_kernels()  # the same parameters, so the same checkpoints, on mamba_ssm.Mamba
    return model


def build(cfg, vocab_size, block_size, device='cpu'):
    """A new model of cfg['model_type'] (on CPU; the caller moves it to device)."""
    module, cls, _, make_config = MODELS[cfg.get('model_type', 'gpt')]
    model_cls = getattr(importlib.import_module(module), cls)
    return finish(model_cls(make_config(cfg, vocab_size, block_size)), device)


def from_model_args(model_args, device='cpu'):
    """The model a checkpoint's model_args describe (GPT checkpoints from before model_type have none)."""
    module, cls, config_cls, _ = MODELS[model_args.get('model_type', 'gpt')]
    mod = importlib.import_module(module)
    return finish(getattr(mod, cls)(getattr(mod, config_cls)(**model_args)), device)
