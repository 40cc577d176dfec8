"""
The token ids every row is written in (the bottom of the data layer: it imports nothing of the project).
Node label k is token NODE_OFFSET + k, so a vocabulary of V labels has NODE_OFFSET + V tokens.
"""
import numpy as np

PAD, PAUSE, EDGE, PATH, FWD, BWD, DUMMY = 0, 1, 2, 3, 4, 5, 6
NODE_OFFSET = 7
TOKENS = dict(pad=PAD, pause=PAUSE, edge=EDGE, path=PATH, fwd=FWD, bwd=BWD, dummy=DUMMY)
TOKEN_TEXT = {PAUSE: '_', EDGE: '[EDGE]', PATH: '[PATH]', FWD: '>', BWD: '<', DUMMY: '$'}  # PAD is not shown
MAX_VOCAB_SIZE = 2 ** 32  # token ids are stored as uint16 or uint32


def decode(row):
    """Token ids -> text, e.g. '[PATH] n17 _ _ _ n3 n40 n12 n9 n17' (PAD left out)."""
    words = []
    for token in np.asarray(row).tolist():
        if token != PAD:
            words.append(TOKEN_TEXT.get(token) or f"n{token - NODE_OFFSET}")
    return ' '.join(words)
