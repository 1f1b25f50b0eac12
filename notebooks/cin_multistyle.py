# %% [markdown]
# # Conditional instance normalization: one network, several styles
#
# Dumoulin et al. (2017) note that a style lives in the affine parameters of instance
# normalization. One residual generator with a (gamma, beta) pair per style and per IN layer,
# everything else shared, learns N styles at once. At inference it picks a style by index or
# mixes styles by mixing their parameters.
#
# Shown: N styles x several held-out photos from one network, and a row mixing two styles.
# **Claim:** each style's held-out style loss is close to that of a single-style network trained
# for it (IN Fig. 4's), at most `close_bound` times it.

# %% tags=["parameters"]
profile = "smoke"
styles = ["delaunay_portrait_de_metzinger", "candy"]
photos = ["karya", "tubingen"]
n_heldout = 3
train_overrides = []          # the cpu profile gives the N-style network more steps
mix_photo = "karya"
mix_weights = [1.0, 0.75, 0.5, 0.25, 0.0]   # weight of styles[0] against styles[1]
close_bound = 1.5

# %%
import matplotlib.pyplot as plt
import torch

from repro import data, experiments, figures, images
from repro.config import to_dict
from repro.figures import plots
from repro.inference import stylize

torch.manual_seed(0)
heldout = data.content_paths("test")[:n_heldout]
rec = figures.FigureRecord("cin_multistyle", profile, title="conditional IN: N styles in one network",
                           params=dict(styles=styles, photos=photos, mix_weights=mix_weights,
                                       close_bound=close_bound, train_overrides=train_overrides))
choice = dict(arch="residual", norm="conditional_instance", style=styles, overrides=train_overrides)
run = experiments.train_generator(profile, progress=False, **choice)
cfg = run.config
rec.params["train_config"] = to_dict(cfg)
size = cfg.data.test_size
model = run.load_model()

# %%
for k, style in enumerate(styles):
    single = experiments.train_generator(profile, arch="residual", norm="instance", style=style, progress=False)
    one = experiments.heldout_losses(single, heldout, size)
    multi = experiments.heldout_losses(run, heldout, size, style=k)
    ratio = multi["style"] / one["style"]
    rec.numbers[style] = {"cin_style": multi["style"], "cin_content": multi["content"],
                          "single_style": one["style"], "single_content": one["content"],
                          "content_image_style": one["content_image_style"], "ratio": ratio,
                          # the fine periodic hatch (issue 18), dB over the photos' spectrum
                          "cin_periodic_excess_db": experiments.periodic_artifacts(run, heldout, size, style=k)["excess_db"],
                          "single_periodic_excess_db": experiments.periodic_artifacts(single, heldout, size)["excess_db"]}
    rec.claim(f"{style}: the {len(styles)}-style network's held-out style loss is close to the single-style network's",
              f"{multi['style']:.3g} vs {one['style']:.3g} (x{ratio:.2f}, bound {close_bound}); "
              f"content photo {one['content_image_style']:.3g}",
              holds=ratio <= close_bound, paper="Dumoulin et al. 2017", assert_at=("paper",))
rec.deviation(f"{len(styles)} styles, {cfg.optim.steps} steps (each style sees about 1/{len(styles)} of "
              f"the batch), single-style networks {single.config.optim.steps} steps; residual generator at "
              f"width {cfg.model.width} (Dumoulin et al.: 32 styles, 40k steps, VGG-16)")
for line in experiments.model_deviations(cfg):
    rec.deviation(line)
if profile == "cpu":
    rec.note("The per-style claims are asserted at the paper profile only: at cpu scale they are fragile. "
             "With the same settings (1200 steps), the_scream's ratio was 1.43 in one regeneration and "
             "2.48 in the next, after changes that only moved the arithmetic's last bits (fused instance "
             "norm, bf16 autocast); its single-style network's loss moved from 0.347 to 0.262. The 4-style "
             "network now trains 1600 steps, so each style sees as many crops as its single-style network; "
             "the_scream remains the outlier (it has the lowest losses of the four, so the ratio is the "
             "most sensitive).")

# %%
crop = lambda im: images.center_crop(im, min(im.shape[-2:]))
rows, titles = [], []
for k, style in enumerate(styles):
    s = images.load_image(data.style_path(style), size=size)
    outs = [stylize(model, images.load_image(data.content_path(p), size=size), style=k) for p in photos]
    rows.append([crop(s)] + [crop(o) for o in outs])
    n = rec.numbers[style]
    titles.append([f"{style.replace('_', ' ')[:24]} (index {k})"]
                  + [f"{p}: x{n['ratio']:.2f} of single-style" if i == 0
                     else f"{p}: hatch {n['cin_periodic_excess_db']:+.1f} dB" if i == 1 else p
                     for i, p in enumerate(photos)])
x = images.load_image(data.content_path(mix_photo), size=size)
mix_row = []
for w in mix_weights:
    weights = [0.0] * len(styles)
    weights[0], weights[1] = w, 1 - w
    mix_row.append(crop(stylize(model, x, style=weights)))
rows.append(mix_row)
titles.append([f"{w:g} / {1 - w:g}" for w in mix_weights])
fig = plots.image_grid(rows, titles=titles, cell=2.4, fontsize=8)
plots.save_figure(fig, "cin_multistyle", rec.out_dir)
rec.save()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("styles:", len(styles), "| held-out photos:", len(heldout))
print("claims recorded:", len(rec.claims))
rec.check()
