# %% [markdown]
# # IN Fig. 1: Gatys et al. optimization-based stylization
#
# Ulyanov et al. (2016) open with the slow method their feed-forward generators replace: the
# pixels of an image are optimized (L-BFGS) so that its VGG features match the content image's
# and its Gram matrices match the style image's (Gatys et al. 2016). **Claim:** the optimization
# lowers the style loss by orders of magnitude while keeping the content.
#
# Measured here: the style loss of the result against the content image's own (the starting
# point); and, for the content, whether the result is still recognisably its photo: its
# content loss against its own photo must be lower than against every other held-out photo.
# Parameters default to the `smoke` profile; `make fig1` runs the `cpu` profile.

# %% tags=["parameters"]
profile = "smoke"
content = "tubingen"
style = "starry_night"
size = 64            # shorter side, pixels
steps = 20           # L-BFGS iterations
style_weight = 1e3

# %%
import torch
import matplotlib.pyplot as plt

from repro import data, experiments, figures, gatys, images
from repro.figures import plots
from repro.losses import style_content_losses

torch.manual_seed(0)
loss = experiments.gatys_loss(profile, style_weight=style_weight)   # the profile's layers and VGG
rec = figures.FigureRecord("in_fig1_gatys", profile, title="Gatys et al. stylization",
                           params=dict(content=content, style=style, size=size, steps=steps,
                                       style_weight=style_weight, content_layers=loss.content_layers,
                                       style_layers=loss.style_layers))
rec.deviation(f"loss network: {experiments.describe_loss_network(loss)} (Gatys et al.: content "
              "relu4_2, style relu1_1..relu5_1)")

# %%
c = images.load_image(data.content_path(content), size=size)
s = images.load_image(data.style_path(style), size=size)
result = gatys.stylize(c, s, steps=steps, loss=loss)

# Raw (unweighted) losses, all against the same targets.
start = style_content_losses(c, c, s, loss)                     # the content image itself
end = style_content_losses(result.image, c, s, loss)            # the result
others = {p.stem: images.resize(images.load_image(p, size=size), tuple(c.shape[-2:]))
          for p in data.content_paths("test") if p.stem != content}
to_others = {k: style_content_losses(result.image, o, s, loss)["content"] for k, o in others.items()}
nearest_other = min(to_others, key=to_others.get)
drop = start["style"] / end["style"]
rec.numbers.update(style_loss_content_image=start["style"], style_loss_result=end["style"],
                   style_loss_drop=drop, content_loss_result=end["content"],
                   content_loss_to_other_photos=to_others, seconds=result.seconds,
                   steps_run=result.steps)
rec.claim("the optimization lowers the style loss by orders of magnitude (>= 100x)",
          f"style loss {start['style']:.3g} -> {end['style']:.3g} ({drop:.0f}x lower) in "
          f"{result.steps} L-BFGS steps at {size} px", holds=drop >= 100, paper="IN Fig. 1")
rec.claim("while keeping the content (the result is closer in content to its photo than to "
          "any other held-out photo)",
          f"content loss {end['content']:.3g} to {content} vs >= {to_others[nearest_other]:.3g} to "
          f"the {len(others)} other photos (nearest: {nearest_other})",
          holds=end["content"] < to_others[nearest_other], paper="IN Fig. 1")

# %%
fig = plt.figure(figsize=(12, 3.4))
for i, (img, title) in enumerate([(c, "content"), (s, "style"), (result.image, "Gatys et al.")]):
    ax = fig.add_subplot(1, 4, i + 1)
    ax.imshow(plots.to_numpy(img))
    ax.set_title(title)
    ax.axis("off")
ax = fig.add_subplot(1, 4, 4)
steps_axis = range(1, len(result.history) + 1)
ax.plot(steps_axis, [h["style"] / style_weight for h in result.history], label="style")
ax.plot(steps_axis, [h["content"] for h in result.history], label="content")
ax.set_yscale("log")
ax.set_ylim(bottom=1e-4)  # the content loss starts at 0 (init from the content image)
ax.set_xlabel("L-BFGS step")
ax.set_title("loss (unweighted)")
ax.legend()
fig.tight_layout()
plots.save_figure(fig, "in_fig1_gatys", rec.out_dir)
rec.save()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("image", tuple(result.image.shape), "in [0, 1]:", bool(result.image.min() >= 0 and result.image.max() <= 1))
print("style loss lower than the content image's:", end["style"] < start["style"])
print("claims recorded:", len(rec.claims))
rec.check()
