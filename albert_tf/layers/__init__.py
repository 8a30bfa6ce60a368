"""Keras layers the ALBERT model is built from."""

from albert_tf.layers.multi_segment_packer import MultiSegmentPacker
from albert_tf.layers.position_embedding import PositionEmbedding
from albert_tf.layers.token_packing import TokenPacking
from albert_tf.layers.transformer_encoder import TransformerEncoder
