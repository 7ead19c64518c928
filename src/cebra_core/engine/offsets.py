"""The offset10-model's window: its kernel sizes, its receptive field and where a window lies
around its centre sample.

Kept apart from `cebra_core.engine.model` (which needs torch) so that the session checks, which run
before any fit in the data environment, know the window without importing torch.
"""

FIRST_KERNEL = 2  # the first Conv1d's kernel size
BLOCK_KERNEL = 3  # kernel size of each residual block and of the output Conv1d
NUM_BLOCKS = 3
# Each Conv1d of kernel k shortens the sequence by k - 1: one output needs this many input samples.
RECEPTIVE_FIELD = 1 + (FIRST_KERNEL - 1) + (NUM_BLOCKS + 1) * (BLOCK_KERNEL - 1)  # 10
OFFSET_LEFT = RECEPTIVE_FIELD // 2  # samples before the centre; the window of sample i is i-5 ... i+4
OFFSET_RIGHT = RECEPTIVE_FIELD - OFFSET_LEFT  # counts the centre sample, as CEBRA's Offset(5, 5) does
