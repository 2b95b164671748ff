"""`facezoo-import FILE --out X.ckpt [--method gpen|gfpgan|stylegan2|dfdnet|styleganex] [--discriminator FILE]
[--components LEFT_EYE RIGHT_EYE MOUTH] [--dictionary DIR_OR_FILE] [--datamodule NAME]`: an official release →
a facezoo checkpoint (DFDNet's: with its dictionaries, and its VGG-19 written beside it as X_vgg19.pth).

The method is recognised from the file's keys and the architecture from its shapes (`weights.releases`). The
checkpoint holds what the release holds: the generator (StyleGANEX: encoder, decoder and latent_avg), plus the
discriminator and GFP-GAN's facial-component discriminators when given, so users can fine-tune
(`facezoo-train init_from=X.ckpt`, which builds the rest).
`facezoo-eval ckpt_path=X.ckpt` evaluates it (on `--datamodule`, default ffhq, unless eval is given one);
`load_model` reads it as it reads the release itself.
"""

import argparse
from pathlib import Path

from facezoo.checkpoints import imported_checkpoint, save_checkpoint
from facezoo.cli import run_cli
from facezoo.weights.releases import IMPORTERS, import_release


def import_file(args: argparse.Namespace) -> None:
    imported = import_release(args.file, args.method, args.discriminator, args.components or (),
                              args.dictionary)
    if getattr(imported, "vgg", None):  # DFDNet's release carries its VGG-19: kept beside the checkpoint
        vgg = Path(args.out).with_name(f"{Path(args.out).stem}_vgg19.pth")
        save_checkpoint(imported.vgg, vgg)
        imported.overrides.append(f"model.generator.vgg_weights={vgg.resolve()}")
        print(f"wrote {vgg}: the release's VGG-19 encoder (torchvision layout), which the checkpoint uses")
    save_checkpoint(imported_checkpoint(imported, args.datamodule), args.out)
    held = ", ".join([*imported.networks, *imported.buffers])
    print(f"wrote {args.out}: {imported.description} ({held}); "
          f"evaluate with: facezoo-eval ckpt_path={args.out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="facezoo-import",
        description="Convert an official release (GPEN, GFP-GAN, StyleGAN2, DFDNet, StyleGANEX) into a "
        "facezoo checkpoint that facezoo-eval, load_model and facezoo-train init_from=... read. Nothing is "
        "downloaded.",
    )
    parser.add_argument("file", help="GPEN-BFR-512.pth, GFPGANv1.4.pth, GFPGANv1.pth, a StyleGAN2 .pt/.pth, "
                        "DFDNet's latest_net_G.pth, styleganex_sr.pt …")
    parser.add_argument("--out", required=True, help="the .ckpt file to write")
    parser.add_argument("--method", choices=sorted(IMPORTERS),
                        help="default: recognised from the file's keys")
    parser.add_argument("--discriminator", help="the release's discriminator (GPEN-BFR-512-D.pth, net_d)")
    parser.add_argument("--components", nargs=3, metavar=("LEFT_EYE", "RIGHT_EYE", "MOUTH"),
                        help="GFP-GAN's facial-component discriminators, in this order")
    parser.add_argument("--dictionary", help="DFDNet's component dictionaries: the official "
                        "DictionaryCenter512/ folder, BasicSR's DFDNet_dict_512-*.pth or a .safetensors")
    parser.add_argument("--datamodule", default="ffhq", help="the data eval uses by default (default: ffhq)")
    run_cli(import_file, parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
