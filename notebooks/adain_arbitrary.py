# %% [markdown]
# # AdaIN: arbitrary style transfer in one forward pass
#
# Huang & Belongie (2017) replace the per-style generator with an encoder-decoder. The frozen
# VGG encodes content and style. Adaptive instance normalization gives the content features
# the style features' channel means and standard deviations. A decoder trained once, on many
# paintings, turns the result back into an image. So any painting works as a style, even one
# never seen in training.
#
# Shown:
#
# - styles held out of training on held-out photos, next to a per-style residual generator (IN
#   Fig. 4's) and Gatys et al.;
# - the content-style trade-off alpha (eq. 14);
# - an interpolation between two unseen styles;
# - colour preservation.
#
# Measured as in the AdaIN paper's Fig. 3, with one yardstick for every method: AdaIN's loss
# (mean/std style loss over the style layers, content loss at the encoder layer against the
# content photo).
#
# **Claims:** on unseen styles, AdaIN's style loss lies between the per-style generator's and the
# content photo's own, ideally far below the latter (at most half), and its content loss stays
# bounded (at most twice the per-style generator's). At alpha = 0 the target is the photo's own
# features, so the decoder should give back the photo: at least 20 dB PSNR on the held-out
# photos, with no colour cast (every channel's mean within 0.03). These two bounds were written
# down before the reconstruction was first measured. Recorded beside them (issue 18, no claim):
# `repro.metrics.periodic_artifacts` of AdaIN's and the per-style generator's held-out outputs,
# the fine 2-4 px hatch in dB over the photos' spectrum.

# %% tags=["parameters"]
profile = "smoke"
unseen = ["candy", "the_scream"]          # held out of AdaIN's training paintings
photos = ["karya", "tubingen"]            # held-out photos shown
n_heldout = 3                             # held-out photos measured
alphas = [0.0, 0.5, 1.0]
mix = ["candy", "the_scream"]             # interpolated pair
mix_weights = [1.0, 0.5, 0.0]             # weight of the first style
color_photo = "tubingen"
color_style = "the_scream"
gatys_steps = 10
gatys_style_weight = 100.0
gatys_photos = 1                          # Gatys et al. on this many held-out photos per style
style_ratio_bound = 0.5
content_ratio_bound = 2.0
recon_psnr_bound = 20.0                   # dB, alpha = 0 against the photo
cast_bound = 0.03                         # largest |mean shift| of a channel at alpha = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from repro import data, experiments, figures, gatys, images, metrics, tasks
from repro.config import to_dict
from repro.figures import plots
from repro.inference import stylize

torch.manual_seed(0)
heldout = data.content_paths("test")[:n_heldout]
rec = figures.FigureRecord("adain_arbitrary", profile, title="AdaIN: arbitrary styles",
                           params=dict(unseen=unseen, photos=photos, alphas=alphas, mix=mix,
                                       mix_weights=mix_weights, gatys_steps=gatys_steps,
                                       style_ratio_bound=style_ratio_bound,
                                       content_ratio_bound=content_ratio_bound,
                                       recon_psnr_bound=recon_psnr_bound, cast_bound=cast_bound))

run = experiments.train_generator(profile, arch="adain", progress=False)
cfg = run.config
seen = {s for s in cfg.data.style}
assert not seen & set(unseen + mix + [color_style]), "the shown styles must be unseen in training"
size, style_size = cfg.data.test_size, cfg.data.style_size
model = run.load_model()
yardstick = tasks.build_loss(cfg)   # AdaIN's own loss: mean/std style, content at the encoder layer
rec.params["train_config"] = to_dict(cfg)

# %%
methods = ("AdaIN", "per-style generator", "Gatys et al.", "content photo")
losses = {m: {} for m in methods}
shown, gatys_cache, hatch = {}, {}, {}
gatys_loss = experiments.gatys_loss(profile, style_weight=gatys_style_weight)   # the profile's layers and VGG


def gatys_result(x, s, key):
    if key not in gatys_cache:
        gatys_cache[key] = gatys.stylize(x, s, steps=gatys_steps, loss=gatys_loss).image
    return gatys_cache[key]


for style in unseen:
    s = images.load_image(data.style_path(style), size=style_size)
    targets = yardstick.compute_style_targets(s[None])
    per_style = experiments.train_generator(profile, arch="residual", norm="instance", style=style,
                                            progress=False)

    def score(y, x):
        t = yardstick(y[None], x[None], style_targets=targets, weighted=False)
        return float(t["style"]), float(t["content"])

    acc = {m: [] for m in methods}
    generated = {"AdaIN": [], "per-style generator": [], "photos": []}
    for i, p in enumerate(heldout):
        x = images.load_image(p, size=size)
        # scored in exact fp32, so the numbers do not depend on this machine's bf16 support
        outs = {"AdaIN": stylize(model, x, style=s, precision="fp32"),
                "per-style generator": stylize(per_style, x, precision="fp32"),
                "content photo": x}
        if i < gatys_photos:
            outs["Gatys et al."] = gatys_result(x, s, (style, p.stem))
        for m, y in outs.items():
            acc[m].append(score(y, x))
        for m in ("AdaIN", "per-style generator"):
            generated[m].append(outs[m])
        generated["photos"].append(x)
    hatch[style] = {m: metrics.periodic_artifacts(generated[m], generated["photos"])["excess_db"]
                    for m in ("AdaIN", "per-style generator")}
    for m in methods:
        losses[m][style] = {"style": float(np.mean([a[0] for a in acc[m]])),
                            "content": float(np.mean([a[1] for a in acc[m]]))}
    shown[style] = [s] + [stylize(model, images.load_image(data.content_path(p), size=size), style=s)
                          for p in photos]
    x0 = images.load_image(data.content_path(photos[0]), size=size)
    shown[style] += [stylize(per_style, x0), gatys_result(x0, s, (style, photos[0]))]
rec.numbers["losses"] = losses
rec.numbers["periodic_excess_db"] = hatch

for style in unseen:
    a, g, own = (losses[m][style] for m in ("AdaIN", "per-style generator", "content photo"))
    gy = losses["Gatys et al."][style]
    rec.claim(f"{style} (unseen): AdaIN's style loss lies between the per-style generator's and the "
              "content photo's",
              f"per-style generator {g['style']:.3g} < AdaIN {a['style']:.3g} < photo {own['style']:.3g}; "
              f"Gatys et al. {gy['style']:.3g}", holds=g["style"] < a["style"] < own["style"],
              paper="AdaIN Fig. 3")
    # not reached at the cpu profile's training length (see the note): recorded, asserted at paper scale
    rec.claim(f"{style} (unseen): AdaIN's style loss is far below the content photo's (at most "
              f"{style_ratio_bound:g}x)", f"x{a['style'] / own['style']:.2f} of the photo's",
              holds=a["style"] <= style_ratio_bound * own["style"], paper="AdaIN Fig. 3",
              assert_at=("paper",))
    rec.claim(f"{style} (unseen): AdaIN's content loss stays bounded",
              f"content loss AdaIN {a['content']:.3g} vs per-style generator {g['content']:.3g} "
              f"(x{a['content'] / g['content']:.2f}), Gatys et al. {gy['content']:.3g}",
              holds=a["content"] <= content_ratio_bound * g["content"], paper="AdaIN Fig. 3")
rec.deviation(f"encoder VGG-19 up to {cfg.model.encoder_layer} ({model.encoder.weights} weights; paper: relu4_1), "
              f"decoder mirrored from it; {len(seen)} training paintings and {cfg.data.n_train or 'all'} "
              f"photos, {cfg.optim.steps} steps at {cfg.data.image_size} px (paper: 80k MS-COCO x 80k "
              "WikiArt, 512 -> 256 px crops, batch 8)")
ratios = [losses["AdaIN"][s]["style"] / losses["content photo"][s]["style"] for s in unseen]
if max(ratios) > style_ratio_bound:
    evals = ", ".join(f"{e['style']:.1f} at step {e['step']}" for e in run.evals())
    rec.note(f"AdaIN's style loss on unseen styles ends at {min(ratios):.2f}-{max(ratios):.2f}x the "
             f"photos' own after {cfg.optim.steps} steps, above the {style_ratio_bound:g}x aimed for: the "
             f"decoder is far from trained (the paper: 160k iterations on 80k paintings; here "
             f"{cfg.optim.steps} on {len(seen)}). Its held-out style loss on its own paintings: {evals}. "
             "A higher style weight did not lower the raw training style loss (configs/cpu.yaml keeps "
             "what was tried).")
if cfg.data.self_style:
    rec.deviation(f"{cfg.data.self_style:.0%} of each training batch is styled by its own photo "
                  "(data.self_style; not in the paper), so the decoder sees the alpha = 0 target")

# %% [markdown]
# ## Reconstruction: alpha = 0
# With alpha = 0 the decoder's input is the photo's own encoder features, f(c). Scored against
# the photo: PSNR, the content loss at the encoder layer, and each channel's mean shift (a
# colour cast).

# %%
s0 = images.load_image(data.style_path(unseen[0]), size=style_size)
psnr, recon_content, shift = [], [], []
for p in heldout:
    x = images.load_image(p, size=size)
    y = stylize(model, x, style=s0, alpha=0.0, precision="fp32")
    psnr.append(float(-10 * torch.log10(((y - x) ** 2).mean())))
    recon_content.append(float(yardstick(y[None], x[None], style=s0[None], weighted=False)["content"]))
    shift.append((y - x).mean((1, 2)))
shift = torch.stack(shift).mean(0).tolist()
recon = {"psnr_db": float(np.mean(psnr)), "psnr_db_min": float(np.min(psnr)), "psnr_db_max": float(np.max(psnr)),
         "content": float(np.mean(recon_content)), "mean_rgb_shift": shift}
rec.numbers["reconstruction"] = recon
# needs a decoder trained far longer than cpu's: recorded there, asserted at paper scale
rec.claim(f"alpha = 0 gives back the photo (mean PSNR at least {recon_psnr_bound:g} dB)",
          f"PSNR {recon['psnr_db']:.1f} dB ({recon['psnr_db_min']:.1f}-{recon['psnr_db_max']:.1f}) over "
          f"{len(heldout)} held-out photos; content loss {recon['content']:.3g}",
          holds=recon["psnr_db"] >= recon_psnr_bound, paper="AdaIN eq. 14", assert_at=("paper",))
rec.claim(f"alpha = 0 has no colour cast (every channel's mean within {cast_bound:g})",
          "mean shift R {:+.3f}, G {:+.3f}, B {:+.3f}".format(*shift),
          holds=max(abs(v) for v in shift) <= cast_bound, paper="AdaIN eq. 14", assert_at=("paper",))

# %%
x0 = images.load_image(data.content_path(photos[0]), size=size)
s_alpha = images.load_image(data.style_path(unseen[0]), size=style_size)
alpha_row = [stylize(model, x0, style=s_alpha, alpha=a) for a in alphas]
mix_styles = [images.load_image(data.style_path(m), size=style_size) for m in mix]
mix_row = [stylize(model, x0, style=mix_styles, style_weights=[w, 1 - w]) for w in mix_weights]
xc = images.load_image(data.content_path(color_photo), size=size)
sc = images.load_image(data.style_path(color_style), size=style_size)
color_row = [xc, sc, stylize(model, xc, style=sc), stylize(model, xc, style=sc, preserve_color=True)]

crop = lambda im: images.center_crop(im, min(im.shape[-2:]))
rows = [[crop(im) for im in shown[s]] for s in unseen]
titles = [[s.replace("_", " ")] + [f"AdaIN: {p}" for p in photos[:-1]]
          + [f"AdaIN: {photos[-1]}\nhatch {hatch[s]['AdaIN']:+.1f} dB"]
          + [f"per-style generator\nhatch {hatch[s]['per-style generator']:+.1f} dB", "Gatys et al."]
          for s in unseen]
rows.append([crop(im) for im in alpha_row])
titles.append([f"alpha = {a:g}" + (f" ({recon['psnr_db']:.1f} dB mean)" if a == 0 else "") for a in alphas])
rows.append([crop(im) for im in mix_row])
titles.append([f"{mix[0]} x{w:g} + {mix[1]} x{1 - w:g}" for w in mix_weights])
rows.append([crop(im) for im in color_row])
titles.append(["content", "style", "AdaIN", "AdaIN, colour preserved"])
# 2-inch cells keep this 38-panel figure under the 1 MB PNG bound (plots.MAX_PNG_BYTES)
fig = plots.image_grid(rows, titles=titles, cell=2.0, fontsize=8)
plots.save_figure(fig, "adain_arbitrary", rec.out_dir)
rec.save()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("unseen styles:", len(unseen), "| held-out photos:", len(heldout), "| methods:", len(methods))
print("claims recorded:", len(rec.claims))
rec.check()
