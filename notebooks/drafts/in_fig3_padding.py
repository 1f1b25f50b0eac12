# %% [markdown]
# # IN Fig. 3: border artifacts of the multi-scale generator, and what cures them
#
# Ulyanov et al. (2016) trained the Texture Networks (multi-scale) generator for a long time and
# saw artifacts along the image border, caused by zero padding; a better padding did not remove
# them, instance normalization did. Shown: zero padding + BN, replicate padding + BN (the
# "better padding"), zero padding + IN, and the Gatys et al. result for reference.
#
# Measured: a border statistic (`repro.metrics.border_artifacts`: how far an 8-pixel frame's
# mean colour and gradient energy depart from the interior's), averaged over held-out photos.
# **Claim:** strong with zero padding + BN, not cured by the better padding, gone with IN (no
# more than the photos' own frames).

# %% tags=["parameters"]
profile = "smoke"
n_heldout = 3            # held-out photos measured (the test split has 12)
style = "starry_night"
show = "karya"
band = 8
gatys_steps = 20
gatys_style_weight = 100.0

# %%
import matplotlib.pyplot as plt
import torch

from repro import data, experiments, figures, gatys, images, metrics, plots
from repro.config import to_dict

torch.manual_seed(0)
out_dir = figures.figures_dir(profile)
heldout = data.content_paths("test")[:n_heldout]
variants = {"zero padding + BN": ("zero", "batch"), "replicate padding + BN": ("replicate", "batch"),
            "zero padding + IN": ("zero", "instance")}
rec = metrics.FigureRecord("in_fig3_padding", profile, title="padding artifacts",
                           params=dict(style=style, variants=variants, band=band))

# %%
stats, shown = {}, {}
for label, (padding, norm) in variants.items():
    run = experiments.train_generator(profile, arch="multiscale", norm=norm, padding=padding,
                                      style=style, progress=False)
    cfg = to_dict(experiments.generator_config(profile, arch="multiscale", norm=norm,
                                               padding=padding, style=style))
    size = cfg["data"]["test_size"]
    outs = experiments.stylize_paths(run, heldout, size)
    per = [metrics.border_artifacts(o, band) for o in outs]
    stats[label] = {k: sum(p[k] for p in per) / len(per) for k in per[0]}
    shown[label] = experiments.stylize_paths(run, [data.content_path(show)], size)[0]
photos = [metrics.border_artifacts(images.load_image(p, size=size), band) for p in heldout]
stats["held-out photos themselves"] = {k: sum(p[k] for p in photos) / len(photos) for k in photos[0]}
rec.numbers.update(border_stats=stats, train_config=cfg)
rec.deviation(f"'trained long' is {cfg['optim']['steps']} steps at this profile (paper: tens of "
              "thousands); the 'better padding' is replicate padding (texture_nets master's)")

zb, rb, zi = (stats[k]["score"] for k in variants)
own = stats["held-out photos themselves"]["score"]
rec.claim("border artifacts are strong with zero padding + BN",
          f"border score {zb:.2f} vs {own:.2f} for the photos themselves", holds=zb > 2 * own,
          paper="IN Fig. 3")
rec.claim("a better padding (replicate) does not cure them",
          f"replicate + BN {rb:.2f} (zero + BN {zb:.2f})", holds=rb > 2 * own, paper="IN Fig. 3")
rec.claim("instance normalization removes them",
          f"zero + IN {zi:.2f} (photos {own:.2f}, zero + BN {zb:.2f})",
          holds=zi < 0.5 * min(zb, rb), paper="IN Fig. 3")

# %%
content = images.load_image(data.content_path(show), size=size)
g = gatys.stylize(content, images.load_image(data.style_path(style), size=size), steps=gatys_steps,
                  style_weight=gatys_style_weight)
cells = [[shown[k] for k in variants] + [g.image]]
titles = [[f"{k}\nborder {stats[k]['score']:.2f}" for k in variants] + ["Gatys et al."]]
fig = plots.image_grid(cells, titles=titles, cell=3.2)
plots.save_figure(fig, "in_fig3_padding", out_dir)
rec.save(out_dir)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("variants:", len(variants), "| held-out photos:", len(heldout))
print("claims recorded:", len(rec.claims))
rec.check()
