"""Checkpoints are complete or absent; the champion pointer switches atomically; rollback."""

import json

import pytest

from rl_assets.registry import ChampionUnusable, PromotionRefused, Registry, lanes, main
from rl_assets.rl import checkpoints


def fake_checkpoint(root, name, sharpe, weights=b"w" * 64):
    def fill(tmp):
        (tmp / "weights.bin").write_bytes(weights)

    return checkpoints.publish_directory(root / name, fill, {"validation_sharpe": sharpe})


def test_publish_is_all_or_nothing(tmp_path):
    def fill_then_crash(tmp):
        (tmp / "half.bin").write_bytes(b"x")
        raise KeyboardInterrupt  # e.g. the run is cancelled mid-write

    with pytest.raises(KeyboardInterrupt):
        checkpoints.publish_directory(tmp_path / "ckpt", fill_then_crash, {})
    assert list(tmp_path.iterdir()) == []


def test_a_directory_without_manifest_is_not_a_checkpoint(tmp_path):
    half = tmp_path / "iter_0003"
    half.mkdir()
    (half / "algorithm_state.pkl").write_bytes(b"x")
    assert not checkpoints.is_complete(half)
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        checkpoints.read_manifest(half)


def test_checkpoints_are_never_overwritten(tmp_path):
    fake_checkpoint(tmp_path, "iter_0001", 1.0)
    with pytest.raises(FileExistsError):
        fake_checkpoint(tmp_path, "iter_0001", 2.0)


def test_stale_temp_dirs_are_removed(tmp_path):
    (tmp_path / ".tmp-iter_0002-abc").mkdir()
    kept = fake_checkpoint(tmp_path, "iter_0001", 1.0)
    removed = checkpoints.remove_stale_temp_dirs(tmp_path)
    assert [p.name for p in removed] == [".tmp-iter_0002-abc"]
    assert checkpoints.is_complete(kept)


def test_promote_keeps_history_and_rollback_switches_the_pointer(tmp_path, capsys):
    registry = Registry(tmp_path / "registry")
    assert registry.champion() is None
    first = registry.promote(fake_checkpoint(tmp_path, "a", 1.0), {"validation_sharpe": 1.0})
    second = registry.promote(fake_checkpoint(tmp_path, "b", 2.0), {"validation_sharpe": 2.0})
    assert (first["version"], second["version"]) == ("v0001", "v0002")
    assert registry.champion()["version"] == "v0002"
    assert registry.versions() == ["v0001", "v0002"]
    assert (tmp_path / "registry/versions/v0002/weights.bin").read_bytes() == b"w" * 64

    root = str(registry.root.parent)
    assert main(["--root", root, "--instrument", "registry", "rollback", "v0001"]) == 0
    assert "registry: champion is now v0001" in capsys.readouterr().out
    assert registry.champion()["version"] == "v0001"
    assert [e["event"] for e in registry.history()] == ["promote", "promote", "rollback"]


def test_rollback_to_unknown_version_names_the_choices(tmp_path):
    registry = Registry(tmp_path / "registry")
    registry.promote(fake_checkpoint(tmp_path, "a", 1.0), {})
    with pytest.raises(ValueError, match="'v0009' is not in the registry.*available: v0001"):
        registry.rollback("v0009")


def test_an_incomplete_candidate_is_refused_and_the_champion_kept(tmp_path):
    registry = Registry(tmp_path / "registry")
    registry.promote(fake_checkpoint(tmp_path, "a", 1.0), {})
    half = tmp_path / "half"
    half.mkdir()
    with pytest.raises(FileNotFoundError):
        registry.promote(half, {})
    assert registry.champion()["version"] == "v0001"
    assert json.loads(registry.pointer.read_text())["version"] == "v0001"


def test_a_torn_history_line_is_skipped(tmp_path):
    registry = Registry(tmp_path / "registry")
    registry.promote(fake_checkpoint(tmp_path, "a", 1.0), {})
    with open(registry.history_file, "a") as f:
        f.write('{"event": "prom')
    assert [e["event"] for e in registry.history()] == ["promote"]


def test_checkpoints_outside_the_artifact_store_are_never_loaded(tmp_path, monkeypatch):
    from rl_assets.resources import ArtifactStoreResource

    monkeypatch.setenv("RL_ASSETS_ARTIFACTS", str(tmp_path / "artifacts"))
    store = ArtifactStoreResource()
    inside = tmp_path / "artifacts" / "runs" / "r1" / "checkpoints" / "iter_0001"
    assert store.trusted(inside) == inside.resolve()
    with pytest.raises(ValueError, match="outside the artifact store.*contain pickles"):
        store.trusted(tmp_path / "downloads" / "ckpt")
    with pytest.raises(ValueError, match="outside the artifact store"):
        store.trusted(tmp_path / "artifacts" / ".." / "elsewhere")


class Verdict:
    """What promote's ``accept`` returns: a gate result."""

    def __init__(self, passed: bool, observed: float = 0.0):
        self.passed, self.observed = passed, observed
        self.name, self.reason = "beats_champion", "test"

    def as_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "observed": self.observed}


def test_promotion_is_compare_and_swap_against_the_champion_in_place(tmp_path):
    """Two candidates both judged against the same old champion: the better one commits
    first; the worse one, committing second, is compared with the new champion and refused."""
    registry = Registry.for_instrument(tmp_path / "registry", "SPY")
    registry.promote(fake_checkpoint(tmp_path, "old", 1.0), {"validation_sharpe": 1.0})
    sharpe = {"v0001": 1.0}

    def better_than_champion_in_place(candidate_sharpe: float):
        def accept(champion):
            seen.append(champion["version"])
            return Verdict(candidate_sharpe > sharpe[champion["version"]])

        return accept

    seen: list[str] = []
    # Both gates ran against v0001 (1.0) and passed: 3.0 > 1.0 and 2.0 > 1.0.
    best = registry.promote(
        fake_checkpoint(tmp_path, "best", 3.0), {"validation_sharpe": 3.0},
        better_than_champion_in_place(3.0),
    )  # fmt: skip
    sharpe[best["version"]] = 3.0
    with pytest.raises(PromotionRefused) as refused:
        registry.promote(
            fake_checkpoint(tmp_path, "worse", 2.0), {"validation_sharpe": 2.0},
            better_than_champion_in_place(2.0),
        )  # fmt: skip
    assert seen == ["v0001", "v0002"]  # the second commit saw the champion the first installed
    assert refused.value.champion["version"] == "v0002"
    assert registry.champion()["version"] == "v0002"
    assert registry.versions() == ["v0001", "v0002"]
    assert [e["replaced"] for e in registry.history()] == [None, "v0001"]


def test_champions_are_per_instrument(tmp_path):
    root = tmp_path / "registry"
    spy, qqq = Registry.for_instrument(root, "SPY"), Registry.for_instrument(root, "QQQ")
    spy.promote(fake_checkpoint(tmp_path, "s1", 1.0), {})
    spy.promote(fake_checkpoint(tmp_path, "s2", 2.0), {})
    assert qqq.champion() is None
    qqq.promote(fake_checkpoint(tmp_path, "q1", 1.0), {})
    spy.rollback("v0001")
    assert (spy.champion()["version"], qqq.champion()["version"]) == ("v0001", "v0001")
    assert spy.champion()["instrument"] == "SPY"
    assert (root / "QQQ/versions/v0001/weights.bin").exists()
    assert lanes(root) == ["QQQ", "SPY"]


def test_a_single_lane_registry_is_moved_to_the_default_instrument(tmp_path, capsys):
    root = tmp_path / "registry"
    legacy = Registry(root)  # the layout before instruments: versions/ at the root
    legacy.promote(fake_checkpoint(tmp_path, "a", 1.0), {"validation_sharpe": 1.0})
    assert (root / "champion.json").exists()
    lane = Registry.for_instrument(root, "SPY")  # any first use migrates
    assert lane.champion() is None
    assert not (root / "champion.json").exists()
    default = Registry.for_instrument(root, "default")
    assert default.champion()["version"] == "v0001"
    assert default.champion()["checkpoint"] == str(root / "default/versions/v0001")
    assert [e["event"] for e in default.history()] == ["promote"]
    assert main(["--root", str(root), "instruments"]) == 0
    assert "default          champion v0001" in capsys.readouterr().out


def test_the_cli_needs_an_instrument_when_there_are_several(tmp_path, capsys):
    root = tmp_path / "registry"
    for name in ("SPY", "QQQ"):
        Registry.for_instrument(root, name).promote(fake_checkpoint(tmp_path, name, 1.0), {})
    assert main(["--root", str(root), "list"]) == 2
    assert "choose an instrument with --instrument" in capsys.readouterr().out
    assert main(["--root", str(root), "--instrument", "QQQ", "list"]) == 0
    assert capsys.readouterr().out.strip() == "* v0001"


def test_version_numbers_are_never_reused_after_a_folder_is_removed(tmp_path, capsys):
    import shutil

    registry = Registry(tmp_path / "registry")
    for i in range(3):
        registry.promote(fake_checkpoint(tmp_path, f"c{i}", 1.0, bytes([i]) * 8), {})
    # The highest version's folder removed by hand: its number is not issued again.
    shutil.rmtree(registry.versions_dir / "v0003")
    assert registry.promote(fake_checkpoint(tmp_path, "c3", 1.0), {})["version"] == "v0004"
    # A lower one removed: the next promotion neither collides nor fails.
    shutil.rmtree(registry.versions_dir / "v0002")
    assert registry.promote(fake_checkpoint(tmp_path, "c4", 1.0), {})["version"] == "v0005"
    assert registry.versions() == ["v0001", "v0004", "v0005"]
    assert registry.removed() == ["v0002", "v0003"]
    root = str(registry.root.parent)
    assert main(["--root", root, "--instrument", "registry", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1] == "  v0002  removed: its folder is gone (the number is not reused)"
    assert listing[-1] == "* v0005"
    with pytest.raises(ValueError, match="'v0003' is not in the registry.*folder was removed"):
        registry.rollback("v0003")


def test_the_champion_is_the_policy_promoted_byte_for_byte(tmp_path, capsys):
    registry = Registry(tmp_path / "registry")
    candidate = fake_checkpoint(tmp_path, "a", 1.0)
    digest = checkpoints.policy_digest(candidate)
    entry = registry.promote(candidate, {})
    # Recorded with the version, and the same for the candidate and its registry copy
    # (whose manifest differs: it adds the promotion).
    assert entry["checkpoint_sha256"] == digest == registry.champion()["checkpoint_sha256"]
    assert checkpoints.content_digest(candidate) != checkpoints.content_digest(
        registry.versions_dir / "v0001"
    )
    assert registry.verified(registry.champion()) == registry.versions_dir / "v0001"
    registry.promote(fake_checkpoint(tmp_path, "b", 1.0, b"b" * 64), {})
    # Bytes flipped inside the v0002's weights after promotion: nothing loads it.
    weights = registry.versions_dir / "v0002" / "weights.bin"
    weights.write_bytes(b"b" * 63 + b"X")
    with pytest.raises(ChampionUnusable, match="v0002 .* is not the policy that passed the gate"):
        registry.verified(registry.champion())
    root = str(registry.root.parent)
    assert main(["--root", root, "--instrument", "registry", "list"]) == 0
    assert "* v0002  ALTERED" in capsys.readouterr().out
    # Rolled back to the intact v0001; back to the altered v0002 is refused.
    registry.rollback("v0001")
    with pytest.raises(ValueError, match="not rolled back: .*v0002"):
        registry.rollback("v0002")
    assert registry.champion()["version"] == "v0001"
    # A candidate changed after the gate judged it is not promoted.
    judged = fake_checkpoint(tmp_path, "c", 1.0, b"c" * 64)
    with pytest.raises(ChampionUnusable, match="changed after it was judged"):
        registry.promote(judged, {}, judged_digest=digest)
    assert registry.champion()["version"] == "v0001" and registry.removed() == []
