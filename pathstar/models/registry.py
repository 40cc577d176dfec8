"""
The model registry: model_type -> the family's module (the key `model_type`):

    gpt     model.py (the root's GPT)
    mamba   pathstar/models/mamba.py

A family module provides Model (a pathstar.models.base.LanguageModel), Config (its dataclass, saved in
checkpoints as model_args), config_from(cfg, vocab_size, block_size), finish(model, device) (device
kernels, if any), check(cfg) and READS (its rules and the keys they read), NOT_APPLICABLE (keys of the
shared config it has no use for, refused unless default, with why) and UNUSED (keys it ignores, which a
sweep warns about), COMPILES (whether compile=auto may torch.compile it) and SLOW_ON_CPU (reproduce.py runs
its arms last). Adding a family is one module and one line in MODELS, plus its keys in configurator.py.
"""
import model as gpt
from pathstar.errors import UserError
from pathstar.models import mamba

MODELS = {'gpt': gpt, 'mamba': mamba}
# the keys the model families' rules read (the validator declares them for the sweep checker)
MODEL_KEYS = tuple(dict.fromkeys(k for f in MODELS.values() for k in (*f.NOT_APPLICABLE, *f.READS)))


def family(cfg):
    """The module of a config's (or a checkpoint's model_args') model_type; GPT checkpoints from before
    model_type have none. An unknown one is a UserError naming the known ones."""
    name = cfg.get('model_type', 'gpt')
    if name not in MODELS:
        raise UserError(f"model_type: expected one of {', '.join(MODELS)}, got {name!r}")
    return MODELS[name]


def build(cfg, vocab_size, block_size, device='cpu'):
    """A new model of cfg['model_type'] (on CPU; the caller moves it to device)."""
    f = family(cfg)
    return f.finish(f.Model(f.config_from(cfg, vocab_size, block_size)), device)


def from_model_args(model_args, device='cpu'):
    """The model a checkpoint's model_args describe."""
    f = family(model_args)
    return f.finish(f.Model(f.Config(**model_args)), device)
