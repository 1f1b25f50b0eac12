# %% [markdown]
# # IN Fig. 2: the contrast of a stylized image follows the style, not the content
#
# Ulyanov et al. (2016) motivate instance normalization with Gatys et al.'s results: stylizing a
# content image and a low-contrast copy of it gives images of about the same contrast, set by
# the style image. A generator should therefore discard the content image's contrast, which
# is what instance normalization does.
#
# Made a measurement here: several content images are stylized (Gatys et al., L-BFGS) with
# their contrast scaled about the mean by factors from 0.25x to 1.5x; then the content is kept
# and the *style* image's contrast is scaled instead. We report the RMS contrast of the
# output's luminance and its **elasticity** (slope of log output contrast against log factor:
# 1 = proportional, 0 = independent). **Claim:** the elasticity to the content's contrast is
# far smaller (at most half) than to the style's.

# %% tags=["parameters"]
profile = "smoke"
contents = ["tubingen", "golden_gate"]
style = "starry_night"
factors = [0.5, 1.0, 1.5]
size = 48
steps = 12
style_weight = 1e3
init = "content"

# %%
import torch
import matplotlib.pyplot as plt

from repro import data, experiments, figures, gatys, images, metrics
from repro.figures import plots

torch.manual_seed(0)
loss = experiments.gatys_loss(profile, style_weight=style_weight)   # the profile's layers and VGG
rec = figures.FigureRecord("in_fig2_contrast", profile, title="contrast invariance",
                           params=dict(contents=contents, style=style, factors=factors, size=size,
                                       steps=steps, style_weight=style_weight, init=init))
rec.deviation("contrast measured as RMS luminance contrast over several content images and "
              "factors (the paper shows one pair of images); loss network: "
              + experiments.describe_loss_network(loss))

# %%
s = images.load_image(data.style_path(style), size=size)
rows_content, rows_style = [], []          # images for the figure
out_c = torch.zeros(len(contents), len(factors))   # output contrast, content scaled
out_s = torch.zeros(len(contents), len(factors))   # output contrast, style scaled
in_c = torch.zeros(len(contents), len(factors))
for i, name in enumerate(contents):
    c = images.load_image(data.content_path(name), size=size)
    row_c, row_s = [], []
    for j, f in enumerate(factors):
        cf = images.scale_contrast(c, f)
        in_c[i, j] = images.rms_contrast(cf)
        y = gatys.stylize(cf, s, steps=steps, loss=loss, init=init).image
        out_c[i, j] = images.rms_contrast(y)
        row_c += [cf, y]
        sf = images.scale_contrast(s, f)
        y = gatys.stylize(c, sf, steps=steps, loss=loss, init=init).image
        out_s[i, j] = images.rms_contrast(y)
        row_s += [images.center_crop(sf, tuple(y.shape[-2:])) if min(sf.shape[-2:]) >= min(y.shape[-2:]) else sf, y]
    rows_content.append(row_c)
    rows_style.append(row_s)

el_content = [metrics.log_slope(factors, out_c[i]) for i in range(len(contents))]
el_input = [metrics.log_slope(factors, in_c[i]) for i in range(len(contents))]
el_style = [metrics.log_slope(factors, out_s[i]) for i in range(len(contents))]
mean = lambda v: sum(v) / len(v)
rec.numbers.update(factors=factors, input_contrast=in_c, output_contrast_content_scaled=out_c,
                   output_contrast_style_scaled=out_s, elasticity_content=el_content,
                   elasticity_style=el_style, elasticity_input=el_input,
                   mean_elasticity_content=mean(el_content), mean_elasticity_style=mean(el_style))
rec.claim("output contrast barely follows the content image's contrast, and follows the style "
          "image's (elasticity to content at most half that to style)",
          f"elasticity of output contrast: {mean(el_content):.2f} to content contrast vs "
          f"{mean(el_style):.2f} to style contrast ({len(contents)} images, factors "
          f"{min(factors)}-{max(factors)})",
          holds=mean(el_content) <= 0.5 * mean(el_style), paper="IN Fig. 2")
rec.claim("for every content image separately",
          ", ".join(f"{n}: {a:.2f} vs {b:.2f}" for n, a, b in zip(contents, el_content, el_style)),
          holds=all(a <= 0.5 * b for a, b in zip(el_content, el_style)), paper="IN Fig. 2")

# %%
# Rows: each content image with its contrast scaled (input | output), then the first content
# image stylized with the style image's contrast scaled (style | output).
n_rows = len(contents) + 1
fig = plt.figure(figsize=(3.2 * len(factors) + 4, 1.45 * n_rows + 0.8))
grid = fig.add_gridspec(n_rows, len(factors) + 1)
pairs = [(i, rows_content[i], "content") for i in range(len(contents))] + [(0, rows_style[0], "style")]
for r, (i, row, kind) in enumerate(pairs):
    for j, f in enumerate(factors):
        a, b = row[2 * j], row[2 * j + 1]
        a = images.resize(a, tuple(b.shape[-2:]))
        ax = fig.add_subplot(grid[r, j])
        ax.imshow(plots.to_numpy(torch.cat([a, b], dim=2)))
        ax.set_xticks([]), ax.set_yticks([])
        if r == 0 or kind == "style":
            ax.set_title(f"{kind} contrast x{f}: {kind} | output", fontsize=8)
        if j == 0:
            ax.set_ylabel(contents[i] if kind == "content" else f"{contents[i]}\n(style scaled)", fontsize=8)
ax = fig.add_subplot(grid[:, -1])
for i, name in enumerate(contents):
    ax.plot(factors, out_c[i], "o-", color=f"C{i}", label=f"{name}: content scaled")
    ax.plot(factors, out_s[i], "s--", color=f"C{i}", label=f"{name}: style scaled")
ax.set_xlabel("contrast factor")
ax.set_ylabel("output RMS contrast")
ax.legend(fontsize=7)
fig.tight_layout()
plots.save_figure(fig, "in_fig2_contrast", rec.out_dir)
rec.save()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("outputs:", tuple(out_c.shape), "finite:", bool(torch.isfinite(out_c).all() and torch.isfinite(out_s).all()))
print("claims recorded:", len(rec.claims))
rec.check()
