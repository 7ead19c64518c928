"""Streaming a causal model bin by bin: every architecture's stream equals `transform` of the same bins
(from the first bin on, in any push size), a multi-session model streams each session with its own
encoder, and a bad push (wrong width, NaN, out-of-order times) raises and leaves the stream as it was."""

from __future__ import annotations

import numpy as np
import pytest

from cebra_core import CEBRA
from cebra_core.engine.architectures import ARCHITECTURES
from cebra_core.engine.streaming import Stream, StreamError
from cebra_core.sessions.simulate import simulate_session

FIT = dict(batch_size=32, max_iterations=5, learning_rate=1e-3, seed=0, device="cpu", causal=True)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def sessions():
    return [simulate_session(f"s{i}", shape=shape, seed=i) for i, shape in enumerate([(300, 14), (260, 9)])]


@pytest.fixture(scope="module")
def causal(sessions):
    return CEBRA(**FIT).fit(sessions[0].neural, sessions[0].labels)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_streams_what_transform_embeds(name, sessions):
    model = CEBRA(model_architecture=name, num_hidden_units=16, **FIT).fit(sessions[0].neural, sessions[0].labels)
    x = sessions[0].neural[:120]
    batch = model.transform(x)
    stream = model.stream()
    streamed = np.concatenate([stream.push(row) for row in x])
    assert streamed.shape == batch.shape and streamed.dtype == np.float32
    np.testing.assert_allclose(streamed, batch, atol=2e-5)  # measured below 1e-6
    # The future does not change the past: transform of a longer recording keeps the first rows.
    np.testing.assert_allclose(model.transform(sessions[0].neural)[:120], batch, atol=2e-5)


def test_push_sizes_do_not_matter(causal, sessions):
    x = sessions[0].neural[:90]
    at_once = causal.stream().push(x)
    stream = causal.stream()
    chunks = np.concatenate([stream.push(x[a:b]) for a, b in [(0, 1), (1, 7), (7, 40), (40, 41), (41, 90)]])
    np.testing.assert_allclose(chunks, at_once, atol=1e-6)
    assert stream.count == 90


def test_multi_session_streams_each_session_with_its_encoder(sessions):
    model = CEBRA(**FIT).fit([s.neural for s in sessions], [s.labels for s in sessions])
    for i, s in enumerate(sessions):
        streamed = model.stream(session_id=i).push(s.neural[:60])
        np.testing.assert_allclose(streamed, model.transform(s.neural[:60], session_id=i), atol=2e-5)
    with pytest.raises(StreamError, match="14 neurons"):
        model.stream(session_id=0).push(sessions[1].neural[:3])  # session 1's 9 neurons into session 0


def test_a_centred_model_does_not_stream(sessions):
    model = CEBRA(**{**FIT, "causal": False}).fit(sessions[0].neural, sessions[0].labels)
    with pytest.raises(ValueError, match="causal=True"):
        model.stream()


def test_bad_pushes_raise_and_change_nothing(causal, sessions):
    x = sessions[0].neural[:50]
    clean = causal.stream().push(x, times=np.arange(50) * 0.025)
    stream = causal.stream()
    stream.push(x[:20], times=np.arange(20) * 0.025)
    nan = x[20:23].copy()
    nan[1, 4] = np.nan
    bad = [
        (dict(bins=x[20:22, :10]), "14 neurons"),
        (dict(bins=np.zeros((2, 3, 14))), "14 neurons"),
        (dict(bins=nan), "bin 21 holds NaN"),
        (dict(bins=x[20:22], times=[0.475, 0.5]), "0.475 is not after 0.475"),  # the last pushed time again
        (dict(bins=x[20:23], times=[0.5, 0.55, 0.525]), "0.525 is not after 0.55"),
        (dict(bins=x[20:22], times=[0.5]), "2 bins but 1 times"),
    ]
    for push, message in bad:
        with pytest.raises(StreamError, match=message):
            stream.push(**push)
        assert stream.count == 20
    rest = stream.push(x[20:], times=np.arange(20, 50) * 0.025)  # usable after every refusal
    np.testing.assert_allclose(rest, clean[20:], atol=1e-6)


def test_stream_cost_does_not_grow_with_the_session(causal, sessions):
    """The stream keeps only the last window of bins, whatever it has seen."""
    stream = causal.stream()
    stream.push(np.tile(sessions[0].neural, (4, 1)))
    assert isinstance(stream, Stream) and stream.buffer.shape == (len(causal.offset_), 14)
