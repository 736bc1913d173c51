"""How far fewer weight bits alone can take the bytes of a pruned model: global magnitude pruning of a study's dense
base model at given params ratios, priced (each layer in its smallest coding) at 8, 4, 3 and 2 bits per kept weight.
No training: the bytes of a mask and a bit width are exact functions of them. What this bounds: a model pruned as far
as global magnitude pruning (which stays within +1 point of test error up to some params ratio) cannot be made more
than the 2-bit column's multiple of its 8-bit bytes smaller by quantisation, because the CSR indices, their filler
entries, the per-channel scales and the float32 biases do not shrink with the bits. Run:

    python experiments/bytes_bound.py --model lenet-300-100 --base-epochs 30 --ratios 28 40 56 \\
        --index-bits 5 6 7 > results/schemes/bytes_bound_lenet300.md
    python experiments/bytes_bound.py --model lenet-5 --base-epochs 20 --ratios 12.8 18 26 \\
        > results/schemes/bytes_bound_lenet5.md
"""

from __future__ import annotations

import argparse

from surrogate_emo.compress import measure
from surrogate_emo.compress.pricing import Pricing
from surrogate_emo.config import RunConfig
from surrogate_emo.pipeline import prepare
from surrogate_emo.quality import global_magnitude_prune, ratios_of
from surrogate_emo.surgery import compressible_layers

BITS = (8, 4, 3, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lenet-300-100")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--base-epochs", type=float, default=30.0)
    parser.add_argument("--ratios", type=float, nargs="+", default=[28.0], help="params compression (dense / kept)")
    parser.add_argument("--index-bits", type=int, nargs="+", default=[5], help="CSR relative index widths")
    args = parser.parse_args()
    setup = prepare(RunConfig(dataset=args.dataset, model=args.model, base_epochs=args.base_epochs,
                              scheme="prune-quant", objectives=["bytes"], progress=False))
    names = list(compressible_layers(setup.base))
    shape = setup.data.input_shape
    print(f"# Bytes of global magnitude pruning at 8 to 2 bits: {args.model} on {args.dataset}\n")
    print("Bytes compression (dense float32 / stored, each layer in its smallest coding) of the dense base model "
          "globally pruned to each params ratio; last column: the 2-bit model's bytes against the 8-bit one's.\n")
    print("| CSR index bits | params compression | " + " | ".join(f"{b}-bit" for b in BITS) + " | 2-bit / 8-bit |")
    print("|---" * (3 + len(BITS)) + "|")
    for index_bits in args.index_bits:
        pricing = Pricing(index_bits=index_bits)
        dense = measure(setup.base, shape, pricing)
        for ratio in args.ratios:
            bytes_x = [1.0 / ratios_of(measure(global_magnitude_prune(setup.base, names, 1.0 / ratio, bits), shape,
                                               pricing), dense)["bytes_ratio"] for bits in BITS]
            cells = " | ".join(f"{x:.1f}x" for x in bytes_x)
            print(f"| {index_bits} | {ratio:g}x | {cells} | {bytes_x[-1] / bytes_x[0]:.2f} |")


if __name__ == "__main__":
    main()
