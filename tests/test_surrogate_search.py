from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pymoo.problems import get_problem
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from surrogate_emo.config import RunConfig
from surrogate_emo.errors import ConfigError
from surrogate_emo.front import hypervolume
from surrogate_emo.pipeline import make_search, prepare
from surrogate_emo.search import SurrogateSearch
from tiny import tiny_config

ZDT1 = get_problem("zdt1", n_var=4)


def drive(search, budget, notes=None):
    n = 0
    while n < budget:
        X = search.ask(budget - n)
        if notes is not None:
            notes.extend(search.annotations(X))
        search.tell(X, ZDT1.evaluate(X))
        n += len(X)
    return search


def make(**kw):
    options = dict(dim=4, n_obj=2, seed=0, surrogate="gp", q=2, n_init=8, pool_size=30, pool_generations=10,
                   n_expensive=2, ref_point=[1.1, 1.1])
    options.update(kw)
    return SurrogateSearch(**options)


def test_initial_design_is_a_latin_hypercube():
    design = make().ask(100)
    assert design.shape == (8, 4)
    # one point in each of the 8 strata of every variable
    assert all(sorted(np.floor(design[:, j] * 8).astype(int)) == list(range(8)) for j in range(4))


def test_loop_improves_on_its_initial_design_and_records_predictions():
    search = drive(make(), 20)
    assert len(search.iterations) == 6 and search.X.shape == (20, 4)
    assert hypervolume(search.F, [1.1, 1.1]) > hypervolume(search.F[:8], [1.1, 1.1]) + 0.05
    stats = search.iterations[-1]
    assert stats["archive"] == 18 and min(stats["fit_seconds"], stats["pool_seconds"], stats["infill_seconds"]) > 0


@pytest.mark.parametrize("refit", ["warm", "cold"])
def test_proposals_depend_only_on_seed_archive_and_stored_fit_state(refit):
    stored = []
    a = drive(make(refit=refit), 12, stored)
    b = make(refit=refit)
    b.restore(stored)  # the notes stored with the trials, then the archive in one go, as a resumed run does
    b.tell(a.X, a.F)
    assert np.array_equal(a.ask(2), b.ask(2))
    notes = b.annotations(np.zeros((2, 4)))
    assert len(notes) == 2 and len(notes[0]["predicted"]) == 2 and notes[0]["archive"] == 12
    assert ("fit_state" in stored[-1]) == (refit == "warm")  # only warm refits carry a state


def test_warm_refit_starts_from_the_last_fit_and_needs_its_state_to_repeat():
    stored = []
    a = drive(make(refit="warm"), 12, stored)
    state = stored[-1]["fit_state"]["gp"]
    assert all(np.isfinite(np.asarray(v, dtype=float)).all() for v in state.values())
    cold = make(refit="warm")  # told the archive but not the state: it fits from the defaults, to another (nearby) optimum
    cold.tell(a.X, a.F)
    X = a.ask(2)
    warm_state = a.annotations(X)[0]["fit_state"]["gp"]
    cold_state = cold.annotations(cold.ask(2))[0]["fit_state"]["gp"]
    assert warm_state.keys() == cold_state.keys() and warm_state != cold_state


def test_never_proposes_an_archived_genome():
    search = drive(make(q=4), 16)
    assert len({row.tobytes() for row in search.X}) == 16


@pytest.mark.parametrize("kwargs, message", [
    (dict(q=0), "need q >= 1"),
    (dict(n_expensive=1), "cheap objectives given exactly when some objectives are cheap"),
    (dict(surrogate="svm"), "unknown surrogate 'svm'"),
    (dict(infill="ei"), "unknown infill criterion 'ei'"),
    (dict(polish_steps=5, surrogate="rf"), "polish_steps must be 0, or > 0 with .* surrogate=rf"),
    (dict(polish_steps=5, infill="parego"), "an EHVI infill"),
    (dict(polish_steps=5, n_expensive=1, cheap=lambda X: X[:, :1]), "cheap objectives: given"),
    (dict(polish_steps=-1), "polish_steps must be 0"),
    (dict(surrogate="gp+"), "names joined by '\\+'"),
    (dict(surrogate="gp+svm"), "unknown surrogate 'svm'"),
    (dict(surrogate="gp+rf+gp-f0"), "needs a batch q of at least one candidate each; got 3 surrogates"),
    (dict(polish_steps=5, surrogate="gp+rf"), "surrogate=gp\\+rf"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make(**kwargs)


def test_botorch_peer_improves_on_its_design_and_is_deterministic():
    from surrogate_emo.search import BoTorchSearch

    def peer():
        return BoTorchSearch(dim=4, n_obj=2, seed=0, q=2, n_init=8, n_expensive=2, ref_point=[1.1, 1.1],
                             num_restarts=2, raw_samples=64)

    stored = []
    first = drive(peer(), 14, stored)
    assert not any("fit_state" in note for note in stored)  # the reference refits cold, as BoTorch's loops do
    assert hypervolume(first.F, [1.1, 1.1]) > hypervolume(first.F[:8], [1.1, 1.1])
    assert first.iterations[-1]["pool_seconds"] == 0.0 and first.iterations[-1]["infill_seconds"] > 0
    assert np.array_equal(first.X, drive(peer(), 14).X)


def test_a_feature_surrogate_is_told_the_features_and_they_are_recorded():
    calls = []

    def features(X):
        calls.append(len(X))
        return ZDT1.evaluate(X)[:, :1]  # the first objective itself: a perfect cheap fidelity

    search = drive(make(surrogate="rf-f0", features=features), 14)
    assert len(search.iterations) == 3 and search.iterations[-1]["feature_seconds"] > 0
    notes = search.annotations(search.X[-2:])
    assert len(notes[0]["features"]) == 1
    # never the thousands of points the pool's evolution predicts: the archive, the pool, the chosen
    assert max(calls) <= 30 + 30 // 4 + 14


def test_a_portfolio_splits_each_batch_between_its_surrogates():
    stored = []
    search = drive(make(surrogate="gp+rf", q=3, refit="warm"), 14, stored)
    notes = search.annotations(search.X[-3:])
    assert [note["surrogate"] for note in notes] == ["gp", "gp", "rf"]  # the first member takes the remainder
    assert list(notes[0]["fit_state"]) == ["gp"]  # the forest keeps no state between fits
    assert len({row.tobytes() for row in search.X}) == 14  # the shares never pick the same genome
    replay = make(surrogate="gp+rf", q=3, refit="warm")
    replay.restore(stored[:11])  # a resumed run: the same archive and stored state, the same batch
    replay.tell(search.X[:11], search.F[:11])
    assert np.array_equal(replay.ask(3), search.X[11:])
    assert "surrogate" not in drive(make(q=3), 11).annotations(search.X[-3:])[0]  # one surrogate: as before


def test_several_reference_points_split_each_batch_and_share_one_fit():
    refs = [[0.3, 1.1], [1.1, 1.1]]
    search = make(q=3, ref_point=refs)
    fits = []
    original = search._fitted
    search._fitted = lambda name, seed, **kw: fits.append(name) or original(name, seed, **kw)
    drive(search, 14)
    assert fits == ["gp"] * 2  # one fit per iteration, not one per reference point
    notes = search.annotations(search.X[-3:])
    assert [note["reference_point"] for note in notes] == [[0.3, 1.1], [0.3, 1.1], [1.1, 1.1]]
    assert len({row.tobytes() for row in search.X}) == 14  # the shares never pick the same genome
    uneven = drive(make(q=4, ref_point=refs, ref_shares=[0.25, 0.75]), 12)
    assert [note["reference_point"][0] for note in uneven.annotations(uneven.X[-4:])] == [0.3, 1.1, 1.1, 1.1]
    # the first share picks what a single reference point picks first: greedy picks do not depend on q
    single, split = drive(make(q=4), 8), drive(make(q=4, ref_point=[[1.1, 1.1], [0.5, 0.5]]), 8)
    assert np.array_equal(single.ask(4)[:2], split.ask(4)[:2])
    assert "reference_point" not in single.annotations(single.X[-4:])[0]  # one reference point: notes as before


@pytest.mark.parametrize("kwargs, message", [
    (dict(ref_point=[[0.3, 1.1], [1.1, 1.1]], surrogate="gp+rf"), "several reference points need one surrogate"),
    (dict(ref_point=[[0.3, 1.1], [1.1, 1.1]], ref_shares=[0.5, 0.6]), "2 fractions >= 0 adding up to 1"),
    (dict(ref_point=[1.1, 1.1], ref_shares=[0.5, 0.5]), "one share per reference point"),
])
def test_bad_reference_shares(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make(**kwargs)


def test_a_later_share_never_picks_the_model_an_earlier_share_picked():
    # a structure of 8 models in all: after the design, each batch's two shares must still differ in structure
    structure = lambda X: [int(row[0] * 8) for row in X]  # noqa: E731
    search = drive(make(surrogate="rf+rf", q=2, n_init=4, structure=structure), 8)
    assert len(set(structure(search.X))) == 8


def coarse(X):
    """A structure that reads the first two genes to a tenth: many genomes build one model."""
    return [(int(row[0] * 10), int(row[1] * 10)) for row in X]


def test_the_pool_never_offers_a_structure_already_evaluated():
    search = drive(make(q=2, structure=coarse), 16)
    assert len(set(coarse(search.X))) == 16  # the design's 8 are distinct in a Latin hypercube; the infill's too


def test_a_space_of_few_structures_still_gets_its_batches():
    search = drive(make(q=2, structure=lambda X: [int(row[0] * 3) for row in X]), 12)
    assert len(search.X) == 12 and len({row.tobytes() for row in search.X}) == 12


def test_screen_generations_evolve_the_pool_on_the_features_too():
    calls = []

    def features(X):
        calls.append(len(X))
        return ZDT1.evaluate(X)[:, :1]

    search = drive(make(surrogate="rf-f0", features=features, screen_generations=2), 10)
    assert len(search.iterations) == 1 and sum(calls) > 2 * 30  # two generations of 30 offspring, at least
    with pytest.raises(ConfigError, match="screen_generations >= 0"):
        make(screen_generations=-1)


def test_a_screened_design_keeps_the_fidelity_0_front_of_a_larger_hypercube():
    def features(X):
        return ZDT1.evaluate(X)[:, :1]

    def cheap(X):
        return ZDT1.evaluate(X)[:, 1:]

    search = make(n_expensive=1, cheap=cheap, features=features, screen_design=64)
    design = search.ask(100)
    assert design.shape == (8, 4)
    candidates = make(n_init=64).ask(100)  # the same seed's 64-point hypercube
    first = {candidates[i].tobytes() for i in NonDominatedSorting().do(ZDT1.evaluate(candidates))[0]}
    kept = {row.tobytes() for row in design}
    assert kept <= {row.tobytes() for row in candidates}
    assert kept <= first or first <= kept  # the best front first, as far as it goes
    with pytest.raises(ConfigError, match="screen_design must be 0, or at least n_init"):
        make(screen_design=64)  # no features


def test_polishing_climbs_to_the_bound_where_zdt1_is_optimal():
    # ZDT1's optimal genomes have every variable but the first at 0: a pool evolved by NSGA-II comes near, the
    # gradient climb of the batch's EHVI gets there
    plain, polished = drive(make(q=4), 16), drive(make(q=4, polish_steps=20), 16)
    assert np.array_equal(plain.X[:8], polished.X[:8])  # the same design
    distance = lambda search: np.median(search.X[8:, 1:].sum(axis=1))  # noqa: E731
    assert distance(polished) < 0.5 * distance(plain)
    assert ((polished.X >= 0) & (polished.X <= 1)).all()
    assert len({row.tobytes() for row in polished.X}) == 16


def test_a_polished_run_of_a_test_problem_through_the_pipeline(tmp_path):
    from surrogate_emo.pipeline import run
    from tiny import tiny_config

    result = run(tiny_config(tmp_path, problem="zdt1", search="surrogate", polish_steps=5, budget=12, n_init=8, q=2))
    assert len(result.evaluations) == 12 and all(e.ok for e in result.evaluations)


def test_a_polished_loop_resumes_to_the_same_proposals():
    stored = []
    a = drive(make(polish_steps=10), 12, stored)
    b = make(polish_steps=10)
    b.restore(stored)
    b.tell(a.X, a.F)
    assert np.array_equal(a.ask(2), b.ask(2))


class FakeShortFineTune:
    """Fidelity 1 on ZDT1: the first objective itself, noiseless (a short fine-tune that ranks perfectly); it
    remembers which genomes it scored."""

    steps, seconds, fidelity = 7, 0.0, 0.25

    def __init__(self):
        self.scored = set()

    def errors(self, X):
        self.scored.update(row.tobytes() for row in X)
        return ZDT1.evaluate(X)[:, 0]

    def features(self, X):
        return np.log(np.maximum(self.errors(X), 1e-3))[:, None]


def first_objective(X):
    return ZDT1.evaluate(X)[:, :1]


def test_a_shortlist_gets_short_fine_tunes_and_the_batch_is_chosen_among_it():
    short, stored = FakeShortFineTune(), []
    search = drive(make(surrogate="gp-f0", features=first_objective, shortlist=5, short=short, refit="warm"), 14,
                   stored)
    loop = stored[8:]
    assert [note["short_scored"] for note in loop] == [5 + 8] * 2 + [5] * 2 + [5] * 2  # the design's at first
    assert all(note["short_steps"] == 7 * note["short_scored"] for note in loop)
    assert {row.tobytes() for row in search.X} <= short.scored  # every true evaluation was shortlisted first
    assert all(note["short_error"] == pytest.approx(f) for note, f in zip(loop, search.F[8:, 0]))
    assert all(len(note["features"]) == 2 for note in loop)  # the refitted surrogate read both fidelities
    assert set(loop[-1]["fit_state"]) == {"gp-f0", "gp-f0|short"}  # both fits start warm next time
    replay = make(surrogate="gp-f0", features=first_objective, shortlist=5, short=FakeShortFineTune(), refit="warm")
    replay.restore(stored[:12])  # a resumed run: the same archive and states, the same batch and charges
    replay.tell(search.X[:12], search.F[:12])
    assert np.array_equal(replay.ask(2), search.X[12:])
    assert replay.annotations(search.X[12:])[0]["short_steps"] == 7 * 5


class ShiftedShortFineTune(FakeShortFineTune):
    """Fidelity 1 of ZDT1's second objective: the objective itself, ending higher, as a short fine-tune does."""

    def errors(self, X):
        self.scored.update(row.tobytes() for row in X)
        return ZDT1.evaluate(X)[:, 1] + 0.5


def multi_fidelity_loop(short, **options):
    """gp-mf with a shortlist on ZDT1, its second objective expensive and its first (x1) exact and cheap."""
    return make(surrogate="gp-mf", shortlist=5, short=short, n_expensive=1, cheap=lambda X: X[:, :1],
                ref_point=[11.0, 1.1], **options)


def drive_expensive_second(search, budget, notes):
    while len(search.X) < budget:
        X = search.ask(budget - len(search.X))
        notes.extend(search.annotations(X))
        search.tell(X, ZDT1.evaluate(X)[:, ::-1])
    return search


def test_a_multi_fidelity_loop_models_every_short_fine_tune_and_resumes_to_the_same_batch():
    short, stored = ShiftedShortFineTune(), []
    search = drive_expensive_second(multi_fidelity_loop(short), 16, stored)
    loop = stored[8:]
    assert [note["short_scored"] for note in loop] == [5 + 8] * 2 + [5] * 6  # the design's at first
    for note, genome in zip(loop, search.X[8:]):  # each batch chosen from its shortlist, which the notes keep
        assert len(note["shortlisted"]) == 5 and genome.tolist() in note["shortlisted"]
    listed = {np.array(row).tobytes() for note in loop for row in note["shortlisted"]}
    modelled = search._cheaper()  # what the next fit models: every short fine-tune of the run, each once
    assert {row.tobytes() for row in modelled.X} == listed | {row.tobytes() for row in search.X}
    assert len(modelled.X) == len(listed | {row.tobytes() for row in search.X}) and modelled.fidelity == 0.25
    assert np.allclose(modelled.Y[:, 0], ZDT1.evaluate(modelled.X)[:, 1] + 0.5)
    replay = multi_fidelity_loop(ShiftedShortFineTune())
    replay.restore(stored[:12])  # a resumed run: the same archive and shortlists, the same batch
    replay.tell(search.X[:12], ZDT1.evaluate(search.X[:12])[:, ::-1])
    assert np.array_equal(replay.ask(2), search.X[12:14])


def test_a_warm_multi_fidelity_loop_refits_from_its_iterations_first_fit_and_resumes_to_the_same_batch(monkeypatch):
    from surrogate_emo.surrogates.multifidelity import MultiFidelityGP

    fits, original = [], MultiFidelityGP._fit

    def recorded(self, X, Y):
        original(self, X, Y)
        fits.append((self._start, self.state()))

    monkeypatch.setattr(MultiFidelityGP, "_fit", recorded)
    stored = []
    search = drive_expensive_second(multi_fidelity_loop(ShiftedShortFineTune(), refit="warm"), 16, stored)
    assert len(fits) == 2 * 4  # per iteration of 2: a fit before the shortlist, a refit with its short fine-tunes
    assert fits[0][0] is None  # the first from the defaults
    for (_, first), (refit_start, refitted) in zip(fits[0::2], fits[1::2]):
        assert refit_start == first  # the refit from the same iteration's first fit
    for (_, refitted), (next_start, _) in zip(fits[1::2], fits[2::2]):
        assert next_start == refitted  # the next iteration from the last fit before it
    assert stored[10]["fit_state"] == {"gp-mf": fits[3][1]}  # kept with the trials: their iteration's last fit
    replay = multi_fidelity_loop(ShiftedShortFineTune(), refit="warm")
    replay.restore(stored[:12])
    replay.tell(search.X[:12], ZDT1.evaluate(search.X[:12])[:, ::-1])
    assert np.array_equal(replay.ask(2), search.X[12:14])


def test_the_ehvi_shortlist_starts_with_the_batch_it_would_choose():
    from surrogate_emo.infill import InfillContext, make_infill
    from surrogate_emo.surrogates import make_surrogate

    X = np.random.default_rng(0).random((12, 4))
    context = InfillContext(make_surrogate("gp").fit(X, ZDT1.evaluate(X)), X, ZDT1.evaluate(X), 2, None,
                            np.array([1.1, 1.1]), seed=0)
    pool = np.random.default_rng(1).random((20, 4))
    infill = make_infill("ehvi-lazy")
    listed = infill.shortlist(context, pool, 6, 2)
    assert len(set(listed.tolist())) == 6 and listed[:2].tolist() == infill.select(context, pool, 2).tolist()
    assert len(make_infill("mean").shortlist(context, pool, 30, 2)) == 20  # never more than the pool


@pytest.mark.parametrize("kwargs, message", [
    (dict(shortlist=2), "shortlist must be 0, or more than q \\(2\\)"),
    (dict(shortlist=5, surrogate="gp-f0"), "short fine-tunes: none"),
    (dict(shortlist=5, surrogate="gp", short=FakeShortFineTune()), "one surrogate that reads features"),
    (dict(shortlist=5, surrogate="gp-f0+rf-f0", short=FakeShortFineTune()), "surrogate=gp-f0\\+rf-f0"),
    (dict(shortlist=5, surrogate="gp-mf", short=FakeShortFineTune()), "gp-mf.*expensive objectives: 2"),
])
def test_bad_shortlists(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make(**kwargs)


def test_the_error_reference_moves_where_the_loop_looks_not_what_the_reports_measure(tmp_path):
    config = tiny_config(tmp_path, search="surrogate", error_reference=0.4)
    setup = prepare(config)
    assert make_search(config, setup).ref_point.tolist() == [0.4, 1.0]
    assert setup.evaluator.ref_point.tolist() == [1.0, 1.0]  # the trace, summary and plots keep the whole range
    assert make_search(dataclasses.replace(config, search="botorch"), setup).ref_point.tolist() == [0.4, 1.0]
    # a run made before the field keeps its name; NSGA-II never reads it
    loop, plain = RunConfig(search="surrogate", error_reference=0.4), RunConfig(search="surrogate")
    assert loop.name != plain.name and "error_reference" not in plain.identity()
    assert RunConfig(search="nsga2", error_reference=0.4).name == RunConfig(search="nsga2").name
    # a share of each batch with the whole range: the evaluator's reference point as a second one
    both = dataclasses.replace(config, whole_range_share=0.5)
    search = make_search(both, setup)
    assert search.ref_points.tolist() == [[0.4, 1.0], [1.0, 1.0]] and search.member_shares.tolist() == [0.5, 0.5]
    aimed_and_whole = RunConfig(search="surrogate", error_reference=0.4, whole_range_share=0.5)
    assert aimed_and_whole.name != loop.name and "whole_range_share" not in loop.identity()
