# %% [markdown]
# # Explore the trained models
#
# Every trained generator under `runs/` (after `make figures`: the per-style IN and BN residual
# and multi-scale generators, conditional IN, AdaIN), applied to any photo, at any size, with
# widgets. Each result shows the generator's time and its style loss against the painting (the
# run's own loss; the photo's own style loss beside it for scale). A single-style IN or BN
# generator is shown beside its twin with the other normalization (same settings otherwise: the
# pair of IN Fig. 5). Conditional IN: pick a style, mix in another (Dumoulin et al.'s
# interpolation of gamma and beta). AdaIN: any painting or an uploaded one, alpha (eq. 14),
# colour preservation, a second painting mixed in.
#
# Without trained runs of some kind, the smoke profile's are trained first (seconds), and said.
# The logic lives in `repro.explore`; this notebook only calls it.

# %% tags=["parameters"]
profile = "smoke"      # whose runs are trained where a kind is missing
photo = "karya"
size = 128
device = "cpu"

# %%
import matplotlib.pyplot as plt
from IPython.display import display

from repro import explore

found = explore.runs_to_explore(profile)
print(explore.describe(found))

# %% [markdown]
# ## The explorer
# Change any control: the result updates. Uploads accept any image file.

# %%
ex = explore.Explorer(found, device=device)
ui = explore.build_ui(ex, photo=photo, size=size)
display(ui.widget)

# %% [markdown]
# ## One of each kind, for the record
# A static view of what the widgets show (and a check that every kind renders): the first run of
# each kind on the photo, and the IN/BN twin of the first single-style generator that has one.

# %%
shown = []
for kind in explore.KINDS:
    info = next(r for r in found if r.kind == kind)
    shown.append((info, ex.render(info, photo, size)))
pair = next(((r, t) for r in found if (t := explore.counterpart(r, found))), None)
if pair is not None:
    shown.append((pair[1], ex.render(pair[1], photo, size)))
fig, axes = plt.subplots(1, len(shown), figsize=(2.4 * len(shown), 2.8))
for ax, (info, r) in zip(axes, shown):
    ax.imshow(r.image.permute(1, 2, 0).numpy())
    ax.set_title(f"{info.label.split('  [')[0]}\n{r.seconds * 1e3:.0f} ms, style {r.style_loss:.3g}", fontsize=8)
    ax.axis("off")
plt.show()
for info, r in shown:
    assert min(r.image.shape[-2:]) == size and r.style_loss == r.style_loss, info.run.name
assert ui.renders >= 1 and not ui.status.value, ui.status.value

# %%
# NBVAL_CHECK_OUTPUT
print("kinds:", ", ".join(sorted({r.kind for r in found})), "| IN/BN pair:", pair is not None)
print("rendered:", [tuple(r.image.shape) for _, r in shown][:1], "x", len(shown))
