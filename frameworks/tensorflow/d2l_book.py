"""The d2l book's TensorFlow NiN, as a reader of the book writes it — the peer we compare with.

Source: Zhang et al., Dive into Deep Learning, §8.3 (d2l.ai/chapter_convolutional-modern/nin.html),
TensorFlow tab, transcribed onto ``d2l.tensorflow.Classifier`` from the ``d2l`` package.
Note the book's ``padding='same'``: it equals the spec's explicit padding only at stride 1
with odd kernels, which is what the book uses.  Not used by the suite's own models.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from d2l import tensorflow as d2l


def nin_block(out_channels, kernel_size, strides, padding):
    return tf.keras.models.Sequential([
        tf.keras.layers.Conv2D(out_channels, kernel_size, strides=strides, padding=padding),
        tf.keras.layers.Activation('relu'),
        tf.keras.layers.Conv2D(out_channels, 1),
        tf.keras.layers.Activation('relu'),
        tf.keras.layers.Conv2D(out_channels, 1),
        tf.keras.layers.Activation('relu')])  # fmt: skip


class NiN(d2l.Classifier):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = tf.keras.models.Sequential([
            nin_block(96, kernel_size=11, strides=4, padding='valid'),
            tf.keras.layers.MaxPool2D(pool_size=3, strides=2),
            nin_block(256, kernel_size=5, strides=1, padding='same'),
            tf.keras.layers.MaxPool2D(pool_size=3, strides=2),
            nin_block(384, kernel_size=3, strides=1, padding='same'),
            tf.keras.layers.MaxPool2D(pool_size=3, strides=2),
            tf.keras.layers.Dropout(0.5),
            nin_block(num_classes, kernel_size=3, strides=1, padding='same'),
            tf.keras.layers.GlobalAvgPool2D(),
            tf.keras.layers.Flatten()])  # fmt: skip


def build(num_classes: int = 10, in_channels: int = 1, input_size: int = 224) -> NiN:
    """The book's model, built by one forward pass on an NHWC batch (Keras builds lazily)."""
    model = NiN(num_classes=num_classes)
    model(tf.zeros((1, input_size, input_size, in_channels)))
    return model


def param_count(model: NiN) -> int:
    return int(sum(np.prod(w.shape) for w in model.net.trainable_weights))


def layer_outputs(model: NiN, x: np.ndarray) -> list[np.ndarray]:
    """Each top-level layer's output, converted to NCHW (the book's net is NHWC)."""
    outputs, h = [], tf.constant(x.transpose(0, 2, 3, 1))
    for layer in model.net.layers:
        h = layer(h, training=False)
        a = h.numpy()
        outputs.append(a.transpose(0, 3, 1, 2) if a.ndim == 4 else a)
    return outputs


def forward(model: NiN, x: np.ndarray) -> np.ndarray:
    return model(tf.constant(x.transpose(0, 2, 3, 1)), training=False).numpy()


def make_train_step(model: NiN, lr: float = 0.05, momentum: float = 0.0, weight_decay: float = 0.0):
    """The book's training step (``d2l.Trainer.fit_epoch``, TensorFlow tab): an eager
    ``GradientTape`` over ``training_step`` and ``optimizer.apply_gradients``; the book's
    plain SGD unless ``momentum`` or ``weight_decay`` is given (Keras' SGD with them, for an
    equal-work comparison: its weight decay is decoupled, the same work per step)."""
    optim = tf.keras.optimizers.SGD(lr, momentum=momentum, weight_decay=weight_decay or None)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def step(x: np.ndarray, y: np.ndarray) -> float:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(tf.constant(x.transpose(0, 2, 3, 1)), training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optim.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return float(loss)

    return step
