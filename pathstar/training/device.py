"""
The machine side of a run: which device, which precision, whether to compile, and what
happens when memory runs out. train.py asks; nothing here knows about the task.
"""
from contextlib import contextmanager, nullcontext

import torch

from pathstar.errors import UserError


class Interrupted(RuntimeError):
    """SIGINT/SIGTERM arrived: the checkpoint is saved and the run can be resumed, or (iter_num None) it
    came before the first step, and nothing new was trained or saved."""

    def __init__(self, signum, iter_num=None):
        super().__init__(f"interrupted by signal {signum} at iter {iter_num}; resume with --init_from=resume"
                         if iter_num is not None else f"interrupted by signal {signum} before the first step: "
                         f"nothing new was trained or saved; run the same command again to start it")
        self.signum = signum


class TrainingError(RuntimeError):
    """The run cannot go on (diverged, out of memory): one line for the user, status failed."""


def pick_device(name):
    if name != 'auto':
        if name.startswith('cuda') and not torch.cuda.is_available():
            raise UserError(f"device: {name!r} asked for but CUDA is not available; use device=cpu or auto")
        if name.startswith('cuda:') and int(name[5:]) >= torch.cuda.device_count():
            raise UserError(f"device: {name!r} asked for but {torch.cuda.device_count()} CUDA device(s) are visible")
        if name == 'mps' and not (getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available()):
            raise UserError("device: 'mps' asked for but MPS is not available; use device=cpu or auto")
        return name
    if torch.cuda.is_available():
        return 'cuda'
    if getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available():
        return 'mps'
    return 'cpu'


def pick_dtype(name, device):
    """'auto': bf16 on GPUs that have it, fp16 (with a grad scaler) on older ones, fp32 elsewhere."""
    if name != 'auto':
        if name != 'float32' and not device.startswith('cuda'):  # autocast runs on CUDA only: it would be fp32
            raise UserError(f"dtype: {name} needs a CUDA device, got device={device!r}; use dtype=auto or float32")
        return name
    if device.startswith('cuda'):  # is_bf16_supported() also counts slow emulation (V100, T4): ask the hardware
        return 'bfloat16' if torch.cuda.get_device_capability(torch.device(device))[0] >= 8 else 'float16'
    return 'float32'


def use_device(device):
    """Make a CUDA device current, so RNG state, capability and memory calls mean it (with
    device='cuda:1' and no CUDA_VISIBLE_DEVICES they would mean GPU 0), and allow TF32 matmuls.
    On a CPU, flush denormal floats (below 1.2e-38 in float32) to zero for the rest of the process: a
    model sure of its answers puts ~1e-40 probabilities in the softmax gradient (11% of the demo Mamba's
    head gradient after 10 steps), and every CPU op that meets one takes a microcode slow path (that
    Mamba's step was 18% faster flushed). Values that small change nothing the model computes. Threads
    torch starts later inherit the mode; ones already running keep theirs."""
    if device == 'cpu':
        torch.set_flush_denormal(True)
    if device.startswith('cuda'):
        torch.cuda.set_device(torch.device(device))
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def autocast_context(device, dtype):
    if dtype == 'float32' or not device.startswith('cuda'):
        return nullcontext()
    return torch.autocast(device_type='cuda', dtype=getattr(torch, dtype))


def use_compile(setting, device):
    return device.startswith('cuda') if setting == 'auto' else setting


def compile_model(model, mode):
    """torch.compile with static shapes and a fresh dynamo cache. A sweep agent runs many trials in one
    process: with a shared cache each new model is a recompile, and after dynamo's recompile limit
    trials would silently run eager; here a run that hits the limit fails instead."""
    import torch._dynamo  # only where compiling: dynamo takes seconds to import
    torch._dynamo.reset()
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    return torch.compile(model, dynamic=False, mode=None if mode == 'default' else mode)



# -----------------------------------------------------------------------------
# memory

@contextmanager
def out_of_memory_as_training_error(cfg, batch_size):
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise TrainingError(oom_message(cfg, batch_size, 'GPU')) from None
    except (MemoryError, RuntimeError) as e:  # the CPU allocator's failure is a RuntimeError
        if not isinstance(e, MemoryError) and "can't allocate memory" not in str(e):
            raise
        raise TrainingError(oom_message(cfg, batch_size, 'CPU')) from None


def oom_message(cfg, batch_size, where):
    return (f"out of {where} memory with batch_size={batch_size}, n_layer={cfg['n_layer']}, n_embd={cfg['n_embd']}: "
            f"lower batch_size (raise gradient_accumulation_steps to keep the rows per step) or the model size")
