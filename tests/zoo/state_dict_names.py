#!/usr/bin/env python3
"""Print the state_dict names of `torchvision.models.<net>(weights=None)`, sorted, one per line, so that a
generated model's weight names can be diffed against torchvision's:

    python3 tests/zoo/state_dict_names.py resnet50 > /tmp/want.txt
    python3 tests/zoo/state_dict_names.py --shapes inception_v3       # "name [shape]" per line

Inception-v3 is built as the zoo's .arch describes it: with its auxiliary head (`AuxLogits.*`), whose
tensors a model without the side output does not use. `num_batches_tracked` buffers (int64 counters that
archc's loader tolerates and ignores) are listed unless --no-counters is given. The models are built on the
meta device: no weights are allocated or initialised, so even VGG-16 takes a moment.
"""

import argparse
import sys
import warnings

import torch
import torchvision

NETS = ["alexnet", "vgg16_bn", "squeezenet1_1", "resnet18", "resnet50", "densenet121", "inception_v3",
        "mobilenet_v2", "shufflenet_v2_x1_0", "efficientnet_b0"]


def state_dict(net):
    kwargs = {"aux_logits": True, "init_weights": False} if net == "inception_v3" else {}
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = getattr(torchvision.models, net)(weights=None, **kwargs)
    return model.state_dict()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("net", choices=NETS)
    ap.add_argument("--shapes", action="store_true", help="print each tensor's shape after its name")
    ap.add_argument("--no-counters", action="store_true", help="leave out the num_batches_tracked buffers")
    args = ap.parse_args()
    for name, tensor in sorted(state_dict(args.net).items()):
        if args.no_counters and name.endswith(".num_batches_tracked"):
            continue
        print(f"{name} {list(tensor.shape)}" if args.shapes else name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
