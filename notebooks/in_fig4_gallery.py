# %% [markdown]
# # IN Fig. 4: stylization with instance normalization, several styles
#
# The residual generator (Johnson et al. 2016) with instance normalization, one network per
# style, applied to held-out photos, among them `karya` and the Delaunay portrait style of the
# paper's figure. **Claim:** on held-out photos, each style's loss is well below the content
# photo's own style loss (what no stylization scores), while the photo stays recognisable.
#
# The last column zooms into the first photo's stylization (nearest-neighbour, x4), so a reader
# can judge the fine periodic hatch that `repro.metrics.periodic_artifacts` measures: the peak
# of the outputs' spectrum at periods of 2-4 px over the photos' own (issue 18).

# %% tags=["parameters"]
profile = "smoke"
n_heldout = 3            # held-out photos measured (the test split has 12)
styles = ["delaunay_portrait_de_metzinger", "candy"]
photos = ["karya", "tubingen"]
ratio_bound = 0.5        # "well below": at most this fraction of the photo's own style loss
# dB of spectral peak (periods of 2-4 px) over the photos'. Set after measuring the runs of
# 2026-12-03 (residual: 6.7-18.7 dB; the multi-scale generator, with no visible grid: 3.9) and
# before the issue-18 fixes were trained; recorded, not yet asserted at any profile.
periodic_bound = 6.0
zoom = 32                # px of the first photo's stylization shown magnified

# %%
import matplotlib.pyplot as plt
import torch

from repro import data, experiments, figures, images
from repro.config import to_dict
from repro.figures import plots

torch.manual_seed(0)
heldout = data.content_paths("test")[:n_heldout]
rec = figures.FigureRecord("in_fig4_gallery", profile, title="IN stylization gallery",
                           params=dict(styles=styles, photos=photos, ratio_bound=ratio_bound,
                                       periodic_bound=periodic_bound))

# %%
cells, titles, ratios = [], [], {}
shown_paths = [data.content_path(p) for p in photos]
for style in styles:
    run = experiments.train_generator(profile, arch="residual", norm="instance", style=style,
                                      progress=False)
    cfg = to_dict(run.config)
    size = cfg["data"]["test_size"]
    res = experiments.heldout_losses(run, heldout, size)
    ratios[style] = res["style"] / res["content_image_style"]
    art = experiments.periodic_artifacts(run, heldout, size)
    rec.numbers[style] = {"style": res["style"], "content": res["content"],
                          "content_image_style": res["content_image_style"], "ratio": ratios[style],
                          "periodic_artifacts": art}
    s = images.load_image(data.style_path(style), size=size)
    outs = [images.center_crop(o, min(o.shape[-2:])) for o in experiments.stylize_paths(run, shown_paths, size)]
    detail = images.center_crop(outs[0], zoom)
    detail = torch.nn.functional.interpolate(detail[None], scale_factor=outs[0].shape[-1] / zoom, mode="nearest")[0]
    cells.append([images.center_crop(s, min(s.shape[-2:]))] + outs + [detail])
    titles.append([f"{style.replace('_', ' ')[:24]}\nstyle loss x{ratios[style]:.2f} of the photo's"]
                  + [""] * len(outs) + [f"x{outs[0].shape[-1] // zoom}: hatch {art['excess_db']:+.1f} dB"])
rec.params["train_config"] = cfg
for style, r in ratios.items():
    rec.claim(f"{style}: held-out style loss well below the content photo's own",
              f"{rec.numbers[style]['style']:.3g} vs {rec.numbers[style]['content_image_style']:.3g} "
              f"(ratio {r:.2f}, bound {ratio_bound}) over {len(heldout)} held-out photos",
              holds=r <= ratio_bound, paper="IN Fig. 4")
    art = rec.numbers[style]["periodic_artifacts"]
    rec.claim(f"{style}: no fine periodic pattern the photos lack",
              f"spectral peak at periods of 2-4 px {art['excess_db']:+.1f} dB over the photos' "
              f"(bound {periodic_bound:g} dB) over {len(heldout)} held-out photos",
              holds=art["excess_db"] <= periodic_bound, paper="issue 18 (not in the paper)", assert_at=())
rec.deviation(f"{cfg['optim']['steps']} steps at {cfg['data']['image_size']} px crops (paper: "
              "tens of thousands at 256 px and more); loss network up to relu3_1")
for line in experiments.model_deviations(run.config):
    rec.deviation(line)

# %%
photos_row = [None] + [images.center_crop(images.load_image(p, size=size), size) for p in shown_paths] + [None]
fig = plots.image_grid([photos_row] + cells, titles=[[""] + photos + ["detail"]] + titles, cell=2.6)
plots.save_figure(fig, "in_fig4_gallery", rec.out_dir)
rec.save()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("styles:", len(styles), "| photos shown:", len(photos))
print("claims recorded:", len(rec.claims))
rec.check()
