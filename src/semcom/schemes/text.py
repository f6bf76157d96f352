"""Progressive text-based generative communication (Nam et al.): scheme ``text``.

Transmitter (Alice): a captioner turns the image into words
(:class:`~semcom.models.captioner.Captioner`); an ordering
(:mod:`semcom.text.orderings`) decides which word goes first; Alice sends them one per
message. Receiver (Bob): after each message, a text-to-image diffusion model
(:class:`~semcom.models.text_diffusion.TextDiffusion`, ``model=``) generates an image
from the words received so far -- at their caption positions, from the seed the first
message carries -- resized to the original's size.

Alice holds Bob's generator too, so she can *simulate* his image: the
``lowest-distance`` ordering picks, at each step, the word whose simulated image is
closest to the original, and with ``target=`` Alice stops as soon as the simulated
image is that close (the last message says so, and Bob's answer is then ``satisfied``).
The distance (``distance=``) is ``lpips-alex=DIR`` / ``lpips-vgg=DIR`` (LPIPS of our
own, the paper's measure) or ``mse`` (pixel MSE in [0, 1], for when no LPIPS weights are
at hand; named as what it is). The attentive orderings use the generator's text
encoder's attention on the whole caption (:func:`semcom.text.attention.word_attention`,
all layers and heads averaged).

The rate is the word budget: at most ``rate`` words are sent (fewer when the caption is
shorter or ``target`` is reached first).

Messages (scheme id of ``"text"``), one per word::

    fields   k      the step (0, 1, ...); a receiver takes them in order
             (k = 0 only) h, w   the image size;  n  the caption's length in words;
             seed   the generation seed;  v  the vocabulary size;  fp  the generator's
             fingerprint (the first 4 bytes of its weights' sha256)
             f      1 on the last message Alice sends, else 0
    sections w      the word: its id under the canonical Huffman code of the training
                    captions' word counts, then its position in ceil(log2 n) bits
                    (:mod:`semcom.text.wordcode`); absent when the caption is empty

A caption with no words is one message without a ``w`` section (Bob draws from no
words). Bob refuses, with :class:`~semcom.errors.BitstreamError`, a step out of order, a
header that disagrees with his model, a word already received at that position, or a
payload that is not a codeword.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.codec.container import Message, pack, unpack
from semcom.errors import BitstreamError, InputError
from semcom.models.fingerprint import FINGERPRINT_BYTES
from semcom.schemes.base import Erasures, register_scheme
from semcom.schemes.learned import LearnedCodecScheme
from semcom.schemes.session import Decoded, Receiver, Transmission
from semcom.text.orderings import ORDERINGS

__all__ = ["TextScheme", "word_counts"]

_HEAD = ("k", "h", "w", "n", "seed", "v", "fp", "f")
#: Training captions whose word counts make the word code (the world's train split).
CODE_CAPTIONS = 4096


@lru_cache(maxsize=1)
def word_counts() -> tuple[int, ...]:
    """Per word id of the world's vocabulary, 1 + its count in the first
    :data:`CODE_CAPTIONS` training captions (every id codable, ``<unk>`` included)."""
    from semcom.data import SyntheticWorld
    from semcom.text.words import synthetic_vocabulary

    vocab = synthetic_vocabulary()
    world = SyntheticWorld(size=64)
    counts = np.ones(len(vocab), dtype=np.int64)
    for seed in range(CODE_CAPTIONS):
        for i in vocab.encode(world.caption(seed)):
            counts[i] += 1
    return tuple(int(c) for c in counts)


def _distance_fn(spec: str) -> Any:
    """``(x, ref) -> (N,)`` for float ``(N, 3, H, W)`` images: LPIPS or MSE."""
    if spec == "mse":
        return lambda x, ref: (x - ref).pow(2).mean((1, 2, 3))
    for net in ("alex", "vgg"):
        if spec.startswith(f"lpips-{net}="):
            from semcom.metrics.lpips_net import load_lpips

            lp = load_lpips(net, spec.split("=", 1)[1]).eval()
            return lambda x, ref: lp(x, ref)
    raise InputError(f"text: distance must be lpips-alex=DIR, lpips-vgg=DIR or mse, got {spec!r}")


@register_scheme("text")
class TextScheme(LearnedCodecScheme):
    """Progressive text-based generative communication (see the module docstring).

    Args:
        model: Bob's generator (a ``text-diffusion`` module, zoo name or checkpoint).
        captioner: Alice's captioner (a ``captioner`` module, zoo name or checkpoint).
        order: ``lowest-distance``, ``most-attentive``, ``least-attentive``, ``natural``
            or ``random``.
        target: stop once Alice's simulated image is within this distance (<=) of the
            original; 0 (default): send the whole word budget.
        distance: ``lpips-alex=DIR``, ``lpips-vgg=DIR`` or ``mse`` (default).
        steps: DDIM steps of every generation (Alice's simulations and Bob's images).
        guidance: their classifier-free guidance weight.
        seed: the generation seed Alice puts in the first message.
        batch_size: generations per model call (Alice's candidate simulations).
        max_pixels: largest image a receiver draws.
        device: torch device of the models.
        check_models: Bob refuses a message made for other generator weights.
    """

    name: ClassVar[str] = "text"
    wire_name: ClassVar[str] = "text"
    outputs: ClassVar[tuple[str, ...]] = ("x_hat", "text")
    role: ClassVar[str] = "proposed"
    family: ClassVar[str] = "text"
    rate_unit: ClassVar[str] = "words"
    rate_range: ClassVar[str] = "an int >= 1: the most words sent"
    default_rates: ClassVar[tuple[float, ...]] = (1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 32.0)
    model_attrs: ClassVar[tuple[str, ...]] = ("generate", "text", "image_size")
    model_kind: ClassVar[str] = "text-to-image generator"

    def __init__(
        self,
        model: nn.Module | str = "text-diffusion-synth",
        captioner: nn.Module | str = "captioner-synth",
        order: str = "most-attentive",
        target: float = 0.0,
        distance: str = "mse",
        steps: int = 10,
        guidance: float = 3.0,
        seed: int = 0,
        batch_size: int = 32,
        max_pixels: int = 1 << 22,
        device: str | torch.device = "cpu",
        check_models: bool = True,
    ) -> None:
        if order not in ORDERINGS:
            raise InputError(f"text: order must be one of {', '.join(ORDERINGS)}, got {order!r}")
        if not 0.0 <= float(target) < float("inf"):
            raise InputError(f"text: target must be a distance >= 0, got {target!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InputError(f"text: steps must be an int >= 1, got {steps!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 32:
            raise InputError(f"text: seed must be an int in [0, 2^32), got {seed!r}")
        self.order, self.target, self.steps = order, float(target), int(steps)
        self.guidance, self.seed, self.distance_spec = float(guidance), int(seed), str(distance)
        self._distance: Any = None
        self._captioner_spec = str(captioner) if isinstance(captioner, Path) else captioner
        self._captioner: nn.Module | None = None
        super().__init__(model, batch_size, max_pixels, device, check_models)
        self._adopt()
        if isinstance(captioner, nn.Module):
            self._captioner = captioner.eval()

    # ------------------------------------------------------------------ models
    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        if reason is not None or not isinstance(self._captioner_spec, str):
            return reason
        from semcom.models.zoo import is_checkpoint_path, list_zoo

        spec = self._captioner_spec
        if is_checkpoint_path(spec):
            return None if Path(spec).is_file() else f"no captioner file {spec}"
        return None if spec in list_zoo() else f"no zoo weights for the captioner {spec}"

    @property
    def captioner(self) -> nn.Module:
        """Alice's captioner (loaded at first use)."""
        if self._captioner is None:
            from semcom.models.zoo import load_model

            reason = self.unavailable_reason()
            if reason is not None:
                raise InputError(f"text: {reason}")
            model = load_model(str(self._captioner_spec))
            if not hasattr(model, "caption"):
                raise InputError(f"text: {self._captioner_spec} holds no captioner")
            self._captioner = model.eval()
        return self._captioner

    def distance(self, x: Tensor, ref: Tensor) -> Tensor:
        """Alice's distance float ``(N,)`` between float images ``(N, 3, H, W)``."""
        if self._distance is None:
            self._distance = _distance_fn(self.distance_spec)
        return self._distance(x, ref)

    @staticmethod
    def vocabulary() -> Any:
        from semcom.text.words import synthetic_vocabulary

        return synthetic_vocabulary()

    @staticmethod
    @lru_cache(maxsize=1)
    def word_code() -> Any:
        from semcom.text.wordcode import WordCode

        return WordCode(word_counts())

    def validate_rate(self, rate: float) -> float:
        if not float(rate).is_integer() or rate < 1:
            raise InputError(f"text: the rate is a word budget, an int >= 1, got {rate!r}")
        return rate

    def settings(self, rate: float) -> dict[str, Any]:
        return {**super().settings(rate), "order": self.order, "target": self.target,
                "distance": self.distance_spec, "steps": self.steps}  # fmt: skip

    def measured_cost(self, rate: float, transmissions: Sequence[Transmission]) -> dict[str, float]:
        n = max(len(transmissions), 1)
        sent = sum(t.stats.get("words_sent", 0) for t in transmissions)
        reached = sum(t.stats.get("reached", 0) for t in transmissions)
        calls = sum(t.stats.get("generator_calls", 0) for t in transmissions)
        return {"words": sent / n, "reached": reached / n, "generator_calls": calls / n}

    # ------------------------------------------------------------ generation
    def generate(self, words: Sequence[tuple[int, int]], seed: int, size: tuple[int, int],
                 batch: Sequence[Sequence[tuple[int, int]]] | None = None,
                 seeds: Sequence[int] | None = None) -> Tensor:  # fmt: skip
        """float ``(B, 3, H, W)`` images from word sets (``(position, id)`` pairs, any
        order), each from ``seed`` (or ``seeds[i]``, one per set), resized to ``size``:
        ``batch`` of sets, or one set. An image depends only on its own words and seed,
        not on the others in the batch."""
        sets = [list(words)] if batch is None else [list(s) for s in batch]
        seeds = [seed] * len(sets) if seeds is None else [int(v) for v in seeds]
        if len(seeds) != len(sets):
            raise InputError(f"text: {len(seeds)} seeds for {len(sets)} word sets")
        n_max = max([len(s) for s in sets] + [1])
        ids = torch.zeros(len(sets), n_max, dtype=torch.int64)
        pos = torch.zeros(len(sets), n_max, dtype=torch.int64)
        for row, s in enumerate(sets):
            for col, (p, w) in enumerate(sorted(s)):
                ids[row, col], pos[row, col] = w, p
        gen = self.model
        out = []
        for lo in range(0, len(sets), self.batch_size):
            x = gen.generate(ids[lo : lo + self.batch_size], pos[lo : lo + self.batch_size],
                             seeds[lo : lo + self.batch_size], steps=self.steps,
                             guidance=self.guidance)  # fmt: skip
            out.append(F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        return torch.cat(out)

    # ---------------------------------------------------------------- transmitter
    def caption_of(self, image: Tensor) -> list[int]:
        """Alice's caption of ``image`` uint8 ``(3, H, W)``: word ids (``<unk>`` kept, the
        other special tokens a captioner may emit dropped)."""
        from semcom.text.words import SPECIALS, UNK

        with torch.no_grad():
            ids = self.captioner.caption(image[None].float().div(255.0))[0]
        return [int(i) for i in ids if i == UNK or i >= len(SPECIALS)]

    def caption_ids(self, caption: str) -> list[int]:
        """Word ids of a caption string (words outside the vocabulary -> ``<unk>``);
        InputError for a caption with no words."""
        ids = self.vocabulary().encode(caption)
        if not ids:
            raise InputError(f"text: the caption {caption!r} has no words")
        return ids

    def order_words(
        self, ids: Sequence[int], ref: Tensor | None, budget: int, size: tuple[int, int]
    ) -> tuple[list[int], list[float], int]:
        """``(order of caption positions, simulated distance after each word sent, generator
        calls)`` for caption ``ids``, the original ``ref`` float ``(1, 3, H, W)`` (needed
        to simulate: the lowest-distance order, ``target``) and the image ``size``. Only
        the words that can be sent are ordered by simulation; the list is complete."""
        n = len(ids)
        calls = 0

        def dist(sets: Sequence[Sequence[int]]) -> list[float]:
            nonlocal calls
            calls += len(sets)
            imgs = self.generate(
                (), self.seed, size, batch=[[(p, ids[p]) for p in s] for s in sets]
            )
            assert ref is not None
            return self.distance(imgs, ref.expand(len(sets), -1, -1, -1)).tolist()

        stop = self.target if self.target > 0 else None
        order, curve = self.ordering(ids, self.order, dist, stop_at=stop, budget=budget)
        if self.order == "lowest-distance":
            return order, curve, calls
        if stop is not None:  # Alice simulates each prefix until it is close enough
            for k in range(1, min(budget, n) + 1):
                curve.append(dist([sorted(order[:k])])[0])
                if curve[-1] <= stop:
                    break
        return order, curve, calls

    def ordering(
        self,
        ids: Sequence[int],
        name: str,
        distance: Any = None,
        *,
        stop_at: float | None = None,
        budget: int | None = None,
    ) -> tuple[list[int], list[float]]:
        """``(order, distances)`` of caption ``ids`` under ordering ``name``
        (:data:`~semcom.text.orderings.ORDERINGS`); ``distance(sets)`` simulates word
        sets for the lowest-distance one (the only one that returns distances)."""
        from semcom.text import orderings

        n = len(ids)
        if name == "lowest-distance":
            if distance is None:
                raise InputError("text: the lowest-distance order needs the original image")
            return orderings.lowest_distance_order(n, distance, stop_at=stop_at, budget=budget)
        if name == "natural":
            return orderings.natural_order(n), []
        if name == "random":
            return orderings.random_order(n, self.seed), []
        if name in ("most-attentive", "least-attentive"):
            return orderings.attentive_order(self.word_attention(ids), name.split("-")[0]), []
        raise InputError(f"text: unknown ordering {name!r}; expected one of {ORDERINGS}")

    def word_attention(self, ids: Sequence[int]) -> Tensor:
        """The generator's text encoder's word-to-word attention on caption ``ids``."""
        from semcom.text.attention import word_attention

        x = torch.tensor([list(ids)], dtype=torch.int64)
        with torch.no_grad():
            _, atts = self.model.text(x, attentions=True)
        return word_attention(atts, list(range(len(ids))))

    def transmit(self, image: Tensor, rate: float) -> Transmission:
        self.validate_rate(rate)
        if image.ndim != 3 or image.shape[0] != 3 or image.dtype != torch.uint8:
            raise InputError(f"text: the image must be uint8 (3, H, W), got {tuple(image.shape)}")
        h, w = int(image.shape[1]), int(image.shape[2])
        ids = self.caption_of(image)
        return self.transmit_caption(ids, (h, w), int(rate), image[None].float().div(255.0))

    def transmit_caption(self, ids: Sequence[int], size: tuple[int, int], budget: int,
                         ref: Tensor | None = None,
                         order: Sequence[int] | None = None) -> Transmission:  # fmt: skip
        """The session of caption ``ids`` (word ids) for an image of ``size``; ``ref``, the
        original float ``(1, 3, H, W)``, is needed by the lowest-distance order and
        ``target``; ``order`` (caption positions) replaces the scheme's ordering (and
        its stop rule)."""
        n = len(ids)
        if n > 63:
            raise InputError(f"text: a caption of {n} words is longer than 63")
        if order is not None:
            if sorted(order) != list(range(n)):
                raise InputError(f"text: order must be a permutation of 0..{n - 1}")
            order, curve, calls = list(order), [], 0
        elif ref is None and (self.order == "lowest-distance" or self.target > 0):
            raise InputError("text: the lowest-distance order and target need the original image")
        else:
            order, curve, calls = self.order_words(ids, ref, budget, size) if n else ([], [], 0)
        count = min(budget, n)
        if curve and self.target > 0 and curve[-1] <= self.target:
            count = min(count, len(curve))
        head = {"h": size[0], "w": size[1], "n": n, "seed": self.seed,
                "v": len(self.vocabulary()), "fp": self.fingerprint()}  # fmt: skip
        code = self.word_code()
        messages = []
        for k in range(max(count, 1)):
            fields: dict[str, Any] = {"k": k, **(head if k == 0 else {}),
                                      "f": int(k == max(count, 1) - 1)}  # fmt: skip
            sections = {"w": code.pack(int(ids[order[k]]), order[k], n)} if n else {}
            messages.append(pack(Message(scheme=self.wire_name, fields=fields, sections=sections)))
        reached = (
            bool(curve) and self.target > 0 and curve[min(count, len(curve)) - 1] <= self.target
        )
        vocab = self.vocabulary()
        stats = {"caption": " ".join(vocab.word(int(i)) for i in ids),
                 "sent": [vocab.word(int(ids[p])) for p in order[:count]],
                 "words_sent": count, "caption_words": n, "reached": int(reached),
                 "generator_calls": calls, "order": [int(p) for p in order[:count]],
                 "distances": [round(float(d), 5) for d in curve[:count]]}  # fmt: skip
        return Transmission(messages, stats=stats)

    def open_receiver(self) -> Receiver:
        return TextReceiver(self)

    def receive_many(
        self,
        receivers: Sequence[Receiver],
        data: Sequence[bytes],
        erasures: Sequence[Erasures],
        lazy: bool = False,
    ) -> list[Decoded | BitstreamError]:
        """One message to each of several sessions' receivers, their images generated in
        batches (per image size): the same answers as one :meth:`TextReceiver.receive`
        each. A message that cannot be taken comes back as its BitstreamError.
        ``lazy``: the answers hold text and ``satisfied`` only; the images are drawn
        when asked for (:meth:`settle_many` for many sessions at once, or each
        receiver's ``result()``): what a sweep that judges only the final answer needs."""
        out: list[Decoded | BitstreamError | None] = [None] * len(receivers)
        taken: list[int] = []
        for i, (rx, d, e) in enumerate(zip(receivers, data, erasures, strict=True)):
            assert isinstance(rx, TextReceiver) and rx.scheme is self
            try:
                rx.take(d, e)
            except BitstreamError as exc:
                out[i] = exc
                continue
            taken.append(i)
            if lazy:
                out[i] = rx.accept(rx.answer(draw=False))
        if not lazy:
            for i, img in self._draw([receivers[i] for i in taken]).items():
                out[taken[i]] = receivers[taken[i]].accept(receivers[taken[i]].answer(img))
        return out  # type: ignore[return-value]

    def settle_many(self, receivers: Sequence[Receiver]) -> None:
        """Draw, in batches, the images the ``lazy`` answers of ``receivers`` left out."""
        stale = [r for r in receivers if isinstance(r, TextReceiver) and r.stale]
        for i, img in self._draw(stale).items():
            stale[i].latest = stale[i].answer(img)

    def _draw(self, receivers: Sequence[TextReceiver]) -> dict[int, Tensor]:
        """Bob's image of each session from its words so far, batched per image size."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, rx in enumerate(receivers):
            assert rx.head is not None
            groups.setdefault((rx.head["h"], rx.head["w"]), []).append(i)
        out: dict[int, Tensor] = {}
        for size, idx in groups.items():
            rxs = [receivers[i] for i in idx]
            with torch.no_grad():
                imgs = self.generate(
                    (),
                    0,
                    size,
                    batch=[sorted(r.words.items()) for r in rxs],
                    seeds=[r.head["seed"] for r in rxs],
                )  # type: ignore[index]
            out.update(zip(idx, imgs, strict=True))
        return out


class TextReceiver(Receiver):
    """Bob's end of one ``text`` session: the words so far, an image after each."""

    def __init__(self, scheme: TextScheme) -> None:
        super().__init__()
        self.scheme = scheme
        self.head: dict[str, int] | None = None
        self.words: dict[int, int] = {}
        self.done = False
        #: the latest answer has no image yet (received with ``lazy``: drawn on demand)
        self.stale = False

    def receive(self, data: bytes, erasures: Erasures = ()) -> Decoded:
        self.take(data, erasures)
        return self.accept(self.answer())

    def take(self, data: bytes, erasures: Erasures = ()) -> None:
        """Read one message into the session's words (BitstreamError, and the state as
        it was, for a message that cannot be taken); :meth:`answer` draws the image."""
        s = self.scheme
        msg = unpack(data, erasures=erasures)
        msg.expect_scheme(s.wire_name)
        k = msg.int_field("k", 0, 1 << 16)
        if k != self.steps:
            raise BitstreamError(f"text: step {k} out of order (expected {self.steps})")
        if self.done:
            raise BitstreamError("text: a message after the last one")
        if k == 0:
            msg.expect_fields(_HEAD)
            h, w = msg.image_size()
            if h * w > s.max_pixels:
                raise BitstreamError(f"text: image {w}x{h} is larger than max_pixels")
            n = msg.int_field("n", 0, 63)
            v = msg.int_field("v", 1, 1 << 16)
            if v != len(s.vocabulary()):
                raise BitstreamError(
                    f"text: vocabulary of {v} words, this receiver has {len(s.vocabulary())}"
                )
            s.check_fingerprint(msg.bytes_field("fp", FINGERPRINT_BYTES))
            head = {"h": h, "w": w, "n": n, "seed": msg.int_field("seed", 0, (1 << 32) - 1)}
        else:
            msg.expect_fields(("k", "f"))
            assert self.head is not None
            head = self.head
        last = msg.int_field("f", 0, 1)
        if head["n"]:
            msg.expect_sections(["w"])
            word, position = s.word_code().unpack(msg.sections["w"], head["n"])
            if position in self.words:
                raise BitstreamError(f"text: a second word for position {position}")
        else:
            msg.expect_sections([])
            word = position = -1
        self.head = head
        if position >= 0:
            self.words[position] = word
        self.done = bool(last) or len(self.words) == head["n"]

    def answer(self, image: Tensor | None = None, draw: bool = True) -> Decoded:
        """Bob's image and text from the words so far (``image``: that image, float
        ``(3, H, W)``, already generated in a batch of sessions). ``draw=False``: the
        text and ``satisfied`` only, the image left to :meth:`result` (``stale``)."""
        assert self.head is not None
        h, w, seed = self.head["h"], self.head["w"], self.head["seed"]
        pairs = sorted(self.words.items())
        if image is None and draw:
            with torch.no_grad():
                image = self.scheme.generate(pairs, seed, (h, w))[0]
        self.stale = image is None
        vocab = self.scheme.vocabulary()
        text = " ".join(vocab.word(i) for _, i in pairs)
        x_hat = None if image is None else (image * 255).round().clamp(0, 255).to(torch.uint8)
        stats = {"words": len(pairs), "caption_words": self.head["n"]}
        return Decoded(x_hat=x_hat, text=text, stats=stats, satisfied=self.done)

    def result(self) -> Decoded:
        if self.stale:
            self.latest = self.answer()
        return super().result()
