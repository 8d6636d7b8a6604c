"""The <locNNNN>/<segNNN> output parser: exact on well-formed output, robust on everything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vfmstudio_paligemma.parsing import ParsedObject, box_to_xyxy, parse_objects, split_classes

# ---------------------------------------------------------------- generators

labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=0, max_size=12).map(
    lambda s: " ".join(s.split())
)
locs = st.tuples(*[st.integers(0, 1023)] * 4)
segs = st.tuples(*[st.integers(0, 127)] * 16)


@st.composite
def objects(draw, with_seg: bool) -> ParsedObject:
    return ParsedObject(locs=draw(locs), label=draw(labels), seg=draw(segs) if with_seg else None)


def render(obj: ParsedObject, gap: str = "") -> str:
    text = gap.join(f"<loc{v:04d}>" for v in obj.locs)
    if obj.seg is not None:
        text += gap + gap.join(f"<seg{v:03d}>" for v in obj.seg)
    return text + (f" {obj.label}" if obj.label else "")


def render_all(objs, gap: str = "") -> str:
    return " ; ".join(render(o, gap) for o in objs)


# Fragments that a broken or cut generation can contain, in any order.
fragments = st.one_of(
    st.integers(0, 9999).map(lambda v: f"<loc{v:04d}>"),
    st.integers(0, 999).map(lambda v: f"<seg{v:03d}>"),
    st.sampled_from(
        [";", " ; ", " ", "<", ">", "<loc", "<loc12>", "<seg1", "loc0001>", "<eos>", "\n", "cat", "a dog"]
    ),
    st.text(max_size=6),
)
noise = st.lists(fragments, max_size=60).map("".join)


# ---------------------------------------------------------------- well-formed output


@given(st.lists(objects(with_seg=False), max_size=6))
def test_well_formed_detections_parse_exactly(objs):
    assert parse_objects(render_all(objs)) == objs


@given(st.lists(objects(with_seg=True), max_size=5))
def test_well_formed_segmentations_parse_exactly(objs):
    assert parse_objects(render_all(objs)) == objs


@given(
    st.lists(st.one_of(objects(with_seg=True), objects(with_seg=False)), max_size=4),
    st.sampled_from([" ", "\n"]),
)
def test_whitespace_between_tokens_is_accepted(objs, gap):
    assert parse_objects(render_all(objs, gap)) == objs


@given(st.lists(objects(with_seg=True), min_size=1, max_size=4), st.data())
def test_a_cut_output_keeps_the_complete_objects(objs, data):
    text = render_all(objs)
    cut = data.draw(st.integers(0, len(text)))
    parsed = parse_objects(text[:cut])
    # Every parsed object is one of the originals, in order; only the last one's label may be cut short.
    assert len(parsed) <= len(objs)
    for got, want in zip(parsed[:-1], objs):
        assert got == want
    if parsed:
        last, want = parsed[-1], objs[len(parsed) - 1]
        assert last.locs == want.locs
        # A cut right after the box cannot tell a box-only object from a mask still to come.
        assert last.seg in (None, want.seg)
        assert want.label.startswith(last.label)
    # Objects that end before the cut point are never lost.
    complete = [o for i, o in enumerate(objs) if len(render_all(objs[: i + 1])) <= cut]
    assert len(parsed) >= len(complete)


# ---------------------------------------------------------------- anything at all


@settings(max_examples=300)
@given(noise)
def test_never_raises_and_only_returns_valid_objects(text):
    for obj in parse_objects(text):
        assert len(obj.locs) == 4 and all(0 <= v <= 1023 for v in obj.locs)
        assert obj.seg is None or (len(obj.seg) == 16 and all(0 <= v <= 127 for v in obj.seg))
        assert obj.label == obj.label.strip() and ";" not in obj.label


@given(st.one_of(st.none(), st.integers(), st.binary()))
def test_non_text_gives_nothing(value):
    assert parse_objects(value) == []


@given(st.tuples(*[st.integers(-50, 1100)] * 4), st.integers(1, 5000), st.integers(1, 5000))
def test_boxes_are_clamped_and_ordered(raw, width, height):
    x0, y0, x1, y1 = box_to_xyxy(raw, width, height)
    assert 0 <= x0 < x1 <= width
    assert 0 <= y0 < y1 <= height


# ---------------------------------------------------------------- cases worth naming


def test_box_order_is_y_x_over_1024_scaled_to_the_original_size():
    (obj,) = parse_objects("<loc0256><loc0128><loc0768><loc0512> cat")
    assert obj.box_xyxy(width=200, height=100) == (25.0, 25.0, 100.0, 75.0)


def test_labels_with_spaces_and_missing_labels():
    text = "<loc0001><loc0002><loc0003><loc0004> traffic  light ; <loc0010><loc0020><loc0030><loc0040>"
    assert [o.label for o in parse_objects(text)] == ["traffic light", ""]


@pytest.mark.parametrize(
    "text, expected_labels",
    [
        ("<loc0001><loc0002><loc0003> cat ; <loc0001><loc0002><loc0003><loc0004> dog", ["dog"]),  # 3 locs
        (
            "<loc0001><loc2000><loc0003><loc0004> cat ; <loc0001><loc0002><loc0003><loc0004> dog",
            ["dog"],
        ),  # range
        ("<loc0001><loc0002><loc0003><loc0004><seg001><seg002> cat", []),  # partial mask
        ("<loc0001><loc0002><loc0003><loc0004>" + "<seg200>" * 16 + " cat", []),  # seg out of range
        ("the answer is <loc0001><loc0002><loc0003><loc0004> cat", ["cat"]),  # stray text before
        ("<loc0001><loc0002><loc0003><loc0004> cat <loc0005><loc0006><loc0007><loc0008> dog", ["cat", "dog"]),
        ("<loc0001><loc0002><loc0003><loc0004><loc0005> cat", []),  # five locs: ambiguous
        ("<loc12345> <loc1> ;;; <seg01>", []),
    ],
)
def test_malformed_groups_are_skipped(text, expected_labels):
    assert [o.label for o in parse_objects(text)] == expected_labels


def test_split_classes():
    assert split_classes("cat ; dog") == ("cat", "dog")
    assert split_classes("cat, hot dog,, cat") == ("cat", "hot dog")
    assert split_classes(("a ; b", " c ")) == ("a b", "c")
    assert split_classes("  ") == ()


# ---------------------------------------------------------------- against the reference regex parser

from vfmstudio.testing.paligemma_reference import reference_objects  # noqa: E402


def _as_reference(objs: list[ParsedObject]) -> list[tuple]:
    return [(o.locs, o.label, o.seg) for o in objs]


def test_stray_locs_before_a_complete_detection_do_not_hide_it():
    text = "<loc0078><loc0025><loc0568> <loc0416><loc0571><loc0893><loc0747> dog"
    assert (
        _as_reference(parse_objects(text)) == reference_objects(text) == [((416, 571, 893, 747), "dog", None)]
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(objects(with_seg=False), min_size=1, max_size=4), st.data())
def test_stray_locs_anywhere_are_read_as_the_reference_reads_them(objs, data):
    parts = []
    for obj in objs:
        n_stray = data.draw(st.integers(0, 3))
        stray = "".join(f"<loc{data.draw(st.integers(0, 1023)):04d}>" for _ in range(n_stray))
        parts.append((stray + " " if stray else "") + render(obj))
    text = " ; ".join(parts)
    assert _as_reference(parse_objects(text)) == reference_objects(text) == _as_reference(objs)


@settings(max_examples=300, deadline=None)
@given(st.lists(objects(with_seg=True), min_size=1, max_size=4))
def test_well_formed_segmentations_equal_the_reference(objs):
    text = render_all(objs)
    assert _as_reference(parse_objects(text)) == reference_objects(text)
