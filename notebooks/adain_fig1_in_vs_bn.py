# %% [markdown]
# # AdaIN Fig. 1: why instance normalization works
#
# Ulyanov et al. (2016) explain instance normalization's success by *contrast normalization*:
# IN removes each content image's contrast. Huang & Belongie (2017) test this. They train the
# same single-style generator with IN and with BN on three kinds of training images:
#
# - (a) the original photos;
# - (b) contrast-normalized photos: histogram equalization of the luminance channel;
# - (c) style-normalized photos: every photo first stylized into one common style (different from
#   the target) by a generator trained earlier.
#
# Then they compare the training style loss of IN and BN per step.
#
# **Claim:** IN's style loss is lower than BN's in (a), still clearly lower in (b), and the gap
# shrinks in (c). So IN normalizes *style*, not only contrast. The gap is the relative
# difference of the style losses averaged over the last part of training, `(BN - IN) / BN`,
# measured for each seed.

# %% tags=["parameters"]
profile = "smoke"
style = "starry_night"           # the target style
normalizing_style = "candy"      # the common style of panel (c); a generator trained earlier
seeds = [0]
last_fraction = 0.25             # the gap is measured over this last part of training
window = 2                       # moving-average window of the smoothed curves (steps)
train_overrides = []             # the cpu profile trains these 12 runs at the sweep's size

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from repro import experiments, figures, metrics
from repro.config import to_dict
from repro.figures import plots

torch.manual_seed(0)
rec = figures.FigureRecord("adain_fig1_in_vs_bn", profile, title="IN vs BN on normalized images",
                           params=dict(style=style, normalizing_style=normalizing_style, seeds=seeds,
                                       last_fraction=last_fraction, window=window,
                                       train_overrides=train_overrides))

# panel (c) needs a generator of the common style: the IN residual generator of this profile
# (at `cpu`, the one IN Fig. 4 trained, reused through the run cache)
normalizer = experiments.train_generator(profile, norm="instance", style=normalizing_style, progress=False)
panels = {
    "(a) original images": ["data.transform=none"],
    "(b) contrast normalized": ["data.transform=equalize"],
    "(c) style normalized": ["data.transform=stylize",
                             f"data.transform_checkpoint={normalizer / 'model.pt'}"],
}

# %%
curves, finals = {}, {}
for panel, overrides in panels.items():
    for norm in ("batch", "instance"):
        for seed in seeds:
            choice = dict(norm=norm, style=style,
                          overrides=[*train_overrides, *overrides, f"train.seed={seed}"])
            run = experiments.train_generator(profile, progress=False, **choice)
            cfg = to_dict(run.config)
            rows = run.metrics()
            steps = np.array([r["step"] for r in rows])
            # the logged terms are weighted; the paper plots the style loss itself
            loss = np.array([r["style"] for r in rows]) / cfg["loss"]["style_weight"]
            curves[panel, norm, seed] = (steps, loss)
            tail = max(1, int(round(last_fraction * len(loss))))
            finals[panel, norm, seed] = float(loss[-tail:].mean())
rec.params["train_config"] = cfg
rec.deviation(f"residual generator (Johnson et al.) at width {cfg['model']['width']}, "
              f"{cfg['optim']['steps']} Adam steps, batch {cfg['optim']['batch_size']}, "
              f"{cfg['data']['image_size']} px crops of {cfg['data']['n_train']} photos "
              "(paper: improved texture networks on MS-COCO, 5000 iterations)")
rec.deviation("style layers " + ",".join(cfg["loss"]["style_layers"]) + f" of VGG-19 ({cfg['loss']['vgg_weights']} "
              "weights); the style loss is the per-step training loss, unweighted")
rec.deviation(f"style normalization by this project's IN generator for {normalizing_style} "
              "(paper: a pretrained Johnson et al. network)")

# %%
gaps = {}
for panel in panels:
    per_seed = [metrics.relative_gap(finals[panel, "batch", s], finals[panel, "instance", s]) for s in seeds]
    gaps[panel] = per_seed
    rec.numbers[panel] = {
        "final_style_bn": [finals[panel, "batch", s] for s in seeds],
        "final_style_in": [finals[panel, "instance", s] for s in seeds],
        "gap_per_seed": per_seed, "gap_mean": float(np.mean(per_seed)),
    }
# the paper's final values, read off its Fig. 1 (x1e5): BN/IN 2.3/1.8, 2.4/1.7, 1.75/1.5
paper_gaps = dict(zip(panels, [metrics.relative_gap(2.3, 1.8), metrics.relative_gap(2.4, 1.7),
                               metrics.relative_gap(1.75, 1.5)]))
rec.numbers["paper_gaps"] = paper_gaps
a, b, c = (gaps[p] for p in panels)


def fmt(per_seed):
    return f"{100 * np.mean(per_seed):.0f}% (seeds: " + ", ".join(f"{100 * g:.0f}%" for g in per_seed) + ")"


pa, pb, pc = (100 * paper_gaps[p] for p in panels)
rec.claim("(a) original images: IN's style loss is lower than BN's",
          f"gap {fmt(a)}; paper {pa:.0f}%", holds=min(a) > 0, paper="AdaIN Fig. 1a")
rec.claim("(b) contrast normalized: IN is still clearly lower, so contrast is not the whole story",
          f"gap {fmt(b)}; paper {pb:.0f}%", holds=min(b) > 0 and np.mean(b) > 0.5 * np.mean(a),
          paper="AdaIN Fig. 1b")
rec.claim("(c) style normalized: the gap shrinks",
          f"gap {fmt(c)} vs {100 * np.mean(a):.0f}% (a) and {100 * np.mean(b):.0f}% (b); paper {pc:.0f}%",
          holds=np.mean(c) < min(np.mean(a), np.mean(b)), paper="AdaIN Fig. 1c")
rec.claim("the ordering is robust: with every seed, the gap in (c) is below that seed's gaps in (a) and (b)",
          "; ".join(f"seed {s}: {100 * ga:.0f}% / {100 * gb:.0f}% / {100 * gc:.0f}%"
                    for s, ga, gb, gc in zip(seeds, a, b, c)) + " (a / b / c)",
          holds=all(gc < min(ga, gb) for ga, gb, gc in zip(a, b, c)), paper="AdaIN Fig. 1")

# %%
fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), sharey=True)
colors = {"batch": "tab:blue", "instance": "tab:red"}
for ax, panel in zip(axes, panels):
    for norm, label in (("batch", "BN"), ("instance", "IN")):
        for i, seed in enumerate(seeds):
            steps, loss = curves[panel, norm, seed]
            plots.loss_curve(ax, steps, loss, label=label if i == 0 else None, color=colors[norm],
                             window=window, raw_alpha=0.15 if i == 0 else 0.08)
    ax.set_title(f"{panel}\nIN {100 * np.mean(gaps[panel]):.0f}% below BN")
    ax.set_xlabel("iteration")
# the first steps fall from far above; show the part where the curves separate, as the paper does
late = [plots.smooth(loss, window)[len(loss) // 8:] for (steps, loss) in curves.values()]
axes[0].set_ylim(0, 1.15 * max(float(np.max(v)) for v in late if len(v)))
axes[0].set_ylabel("style loss (training)")
axes[0].legend()
fig.tight_layout()
plots.save_figure(fig, "adain_fig1_in_vs_bn", rec.out_dir)
rec.save()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("panels:", len(panels), "| runs:", len(curves), "| seeds:", len(seeds))
print("claims recorded:", len(rec.claims))
rec.check()
