# %% [markdown]
# # IN Fig. 6: one generator at 512 and 1080 pixels
#
# The generators are fully convolutional: the Delaunay model of Fig. 4, trained on small crops,
# applies to any resolution. Ulyanov et al. show it at 512 and 1080 pixels: the strokes keep
# their pixel size, so the higher resolution shows finer detail of the photo. Measured: the time
# of each stylization (the median of three calls in a fresh process, after a first call at that
# size, which also pays for the allocator and the kernels' first use and is recorded beside it)
# and the memory one call adds (another fresh process). **Claim:** both resolutions
# work, and time and memory grow roughly in proportion to the number of pixels (within 1.5x
# of the pixel ratio: a fully convolutional network has no term that grows faster). The time
# row is recorded, not asserted: it is measured on this machine's CPU at every profile, and a
# CPU's time per pixel also depends on whether the feature maps fit in its caches.
# Recorded beside it (issue 18, no claim): `repro.metrics.periodic_artifacts` of each output
# against the photo at the same size, the fine 2-4 px hatch in dB over the photo's spectrum; its
# period is in output pixels, so the 1080 px window shows it at full size.

# %% tags=["parameters"]
profile = "smoke"
style = "delaunay_portrait_de_metzinger"
photo = "karya"
sizes = [128, 256]       # shorter side; the cpu profile uses 512 and 1080
threads = 2

# %%
import matplotlib.pyplot as plt

from repro import data, experiments, figures, images, metrics
from repro.figures import plots

rec = figures.FigureRecord("in_fig6_resolution", profile, title="multi-resolution",
                           params=dict(style=style, photo=photo, sizes=sizes, threads=threads))
run = experiments.train_generator(profile, arch="residual", norm="instance", style=style, progress=False)
source = data.hires_path(photo)

# %%
# the default (fast) path, as a user runs it; exact fp32 recorded beside it (bench/ has more)
measured = {s: experiments.measure_stylize(run, source, s, threads) for s in sizes}
exact = {s: experiments.measure_stylize(run, source, s, threads, precision="fp32") for s in sizes}
outs = {s: experiments.stylize_paths(run, [source], s)[0] for s in sizes}
hatch = {s: metrics.periodic_artifacts([outs[s]], [images.load_image(source, size=s)])["excess_db"]
         for s in sizes}
lo, hi = sizes[0], sizes[-1]
pix = (hi / lo) ** 2
t_ratio = measured[hi]["seconds"] / measured[lo]["seconds"]
first_ratio = measured[hi]["first_seconds"] / measured[lo]["first_seconds"]
m_ratio = measured[hi]["extra_bytes"] / max(measured[lo]["extra_bytes"], 1)
rec.numbers.update(measured=measured, exact_fp32=exact, pixel_ratio=pix, time_ratio=t_ratio,
                   first_call_time_ratio=first_ratio, memory_ratio=m_ratio, periodic_excess_db=hatch)
rec.note("Fig. 6 times the default path (bf16 autocast where native, no compilation), warmed up at each "
         "size; the first call at each size took " + ", ".join(f"{s} px: {measured[s]['first_seconds']:.2f} s"
                                                            for s in sizes)
         + f" ({first_ratio:.1f}x for {pix:.1f}x the pixels). Exact "
         "fp32 takes " + ", ".join(f"{s} px: {exact[s]['seconds']:.2f} s, {exact[s]['extra_bytes'] / 2**20:.0f} MiB"
                                   for s in sizes) + ". Memory is the resident size above the size before the "
         "call (the kernel's high-water mark) in a process whose allocator returns freed blocks (see "
         "experiments.measure_stylize).")
ok_shapes = all(list(outs[s].shape[-2:]) == list(images.load_image(source, size=s).shape[-2:]) for s in sizes)
rec.claim("the generator trained on small crops applies at both resolutions (fully convolutional)",
          ", ".join(f"{s} px: {measured[s]['seconds']:.2f} s, {measured[s]['extra_bytes'] / 2**20:.0f} MiB"
                    for s in sizes), holds=ok_shapes, paper="IN Fig. 6")
# one threshold (1.5x the pixel ratio), two rows: the memory is the network's; the time (always
# on the CPU, measure_stylize) also depends on the machine's caches, so it is only recorded
rec.claim("memory grows roughly in proportion to the pixels (within 1.5x of the pixel ratio)",
          f"{pix:.1f}x the pixels: {m_ratio:.1f}x the memory", holds=m_ratio < 1.5 * pix, paper="IN Fig. 6")
per_px = {s: measured[s]["seconds"] / (measured[s]["shape"][-2] * measured[s]["shape"][-1]) * 1e6 for s in sizes}
rec.claim("time grows roughly in proportion to the pixels (within 1.5x of the pixel ratio)",
          f"{pix:.1f}x the pixels: {t_ratio:.1f}x the time ("
          + ", ".join(f"{per_px[s]:.2f} us/px at {s} px" for s in sizes) + ")",
          holds=t_ratio < 1.5 * pix, paper="IN Fig. 6", assert_at=())
if t_ratio >= 1.5 * pix:
    rec.note("The time per pixel rises with the size on this CPU, by more than the 1.5x allowed. Measured "
             "once by hand (torch profiler, 2 cores, a Xeon with AMX, 2026-12-07): about half of a call is in memory-bound "
             "ops (copy_ 37-41%, reflection_pad2d 14%) whose cost per pixel grows once the feature maps "
             "leave the caches; fp32, bf16 autocast and channels_last all show it (the warmed time per "
             "pixel 1.4-1.8x higher at 1080 px than at 512 px; about flat from 256 to 512 px). The memory "
             "row, the network's own cost, holds.")

# %%
# both outputs scaled to the page, then a window of the largest at one output pixel per figure
# pixel: the detail the higher resolution adds, without a full-size raster in the figure
hi_out = outs[hi]
win = min(hi_out.shape[-2:]) * 3 // 8
top, left = (hi_out.shape[-2] - win) // 2, (hi_out.shape[-1] - win) // 2
zoom = hi_out[..., top:top + win, left:left + win]
cell = 4.0
dpi = max(100, round(win / cell))  # 1:1 at the cpu profile's 1080 px; smoke windows are magnified
fig = plots.image_grid([[outs[s] for s in sizes] + [zoom]],
                       titles=[[f"{s} px: {measured[s]['seconds']:.2f} s, "
                                f"{measured[s]['extra_bytes'] / 2**20:.0f} MiB" for s in sizes]
                               + [f"{hi} px, centre {win} px, x{cell * dpi / win:.1f}; "
                                  f"hatch {hatch[hi]:+.1f} dB"]], cell=cell)
plots.save_figure(fig, "in_fig6_resolution", rec.out_dir, dpi=dpi)
rec.save()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("resolutions:", sizes == sorted(sizes), "| shapes match:", ok_shapes)
print("claims recorded:", len(rec.claims))
rec.check()
