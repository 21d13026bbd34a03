"""Runs dynae-mpi --check on bad input files and checks each is refused with exit code 2 and a
message naming the file, the line and the key.

usage: run_bad.py --exe DYNAE_MPI --dir SCRATCH [--launcher MPIEXEC ARGS...] [--only NAME...]

Each case is (name, file text, extra arguments, substrings the output must contain). The file is
written to SCRATCH/NAME.toml and run from SCRATCH, so messages start with "NAME.toml:LINE:".
With --launcher the program runs under it (e.g. mpiexec -n 2) and the message must appear once.
"""
import concurrent.futures
import os
import subprocess
import sys

INPUT = '[data]\ninput = ["t.h5:/x"]\n'  # two lines of a valid file


def rule(name, section, key, value, expected):
    """A one-key case: `key = value` in [section], on line 3 ([data]) or 4 (after its header)."""
    if section == "data":
        text, line = INPUT + f"{key} = {value}\n", 3
    else:
        text, line = INPUT + f"[{section}]\n{key} = {value}\n", 4
    return (name, text, [], [f"{name}.toml:{line}:", f"{section}.{key}", expected])


CASES = [
    # unknown names, with suggestions
    ("typo", INPUT + "[train]\nbatchsize = 4\n", [],
     ["typo.toml:4:", "unknown key 'train.batchsize'", "did you mean 'train.batch_size'?"]),
    ("wrong_section", INPUT + "[train]\nepochs = 3\nd_min = 1.0\n", [],
     ["wrong_section.toml:5:", "unknown key 'train.d_min'", "did you mean 'cluster.d_min'?"]),
    ("section_typo", INPUT + "\n[trian]\nlr = 0.1\n", [],
     ["section_typo.toml:4:", "unknown section [trian]", "did you mean [train]?"]),
    ("unknown_key", INPUT + "[model]\nflux_capacitor = 1\n", [],
     ["unknown_key.toml:4:", "unknown key 'model.flux_capacitor'", "known keys of this section: type, latent_dim,"]),
    ("unknown_section", INPUT + "[optimizer]\nlr = 1\n", [],
     ["unknown_section.toml:3:", "unknown section [optimizer]", "the sections are [data]"]),
    ("outside_section", "lr = 0.1\n" + INPUT, [],
     ["outside_section.toml:1:", "'lr' outside any section", "did you mean 'train.lr'?"]),
    ("not_a_section", "train = 5\n" + INPUT, [],
     ["not_a_section.toml:1:", "'train' must be a section", "found integer"]),
    ("case_typo", INPUT + "[train]\nLR = 0.1\n", [],
     ["case_typo.toml:4:", "train.LR", "did you mean 'train.lr'?"]),
    # wrong types
    rule("int_got_float", "train", "epochs", "2.5", "must be an integer, found float 2.5"),
    rule("int_got_whole_float", "loss", "projections", "50.0", "must be an integer, found float 50.0"),
    rule("float_got_string", "train", "lr", '"0.001"', 'must be a number, found string "0.001"'),
    rule("bool_got_int", "output", "quiet", "1", "must be true or false, found integer 1"),
    rule("list_got_int", "model", "encoder", "32", "must be an array of integers"),
    rule("list_item_string", "model", "encoder", '[32, "x"]', 'model.encoder[1] must be an integer, found string "x"'),
    rule("string_got_int", "model", "type", "3", "must be a string, found integer 3"),
    rule("data_got_string", "data", "target", '"y.h5:/t"', 'must be an array of "FILE:DATASET" strings'),
    rule("date", "train", "lr", "1979-05-27", "must be a number, found"),
    # ranges
    rule("latent_dim", "model", "latent_dim", "0", "must be >= 1 (found 0)"),
    rule("batch_size", "train", "batch_size", "1", "must be >= 2 (found 1)"),
    rule("d_min_zero", "cluster", "d_min", "0", "must be > 0"),
    rule("d_min_negative", "cluster", "d_min", "-2.5", "must be > 0"),
    rule("gamma", "cluster", "gamma", "0.5", "must be >= 1"),
    rule("test_fraction_one", "data", "test_fraction", "1.0", "must be in [0, 1)"),
    rule("test_fraction_negative", "data", "test_fraction", "-0.1", "must be in [0, 1)"),
    rule("encoder_empty", "model", "encoder", "[]", "must list at least one hidden layer"),
    rule("decoder_zero", "model", "decoder", "[32, 0]", "model.decoder[1] must be >= 1 (found 0)"),
    rule("prior_negative", "model", "prior", "[-4]", "model.prior[0] must be >= 1 (found -4)"),
    rule("too_many_layers", "model", "prior", "[" + ", ".join(["8"] * 16) + "]", "16 hidden layers, at most 15"),
    rule("lag", "data", "lag", "0", "must be >= 1"),
    rule("projections", "loss", "projections", "0", "must be >= 1"),
    rule("epochs", "train", "epochs", "0", "must be >= 1"),
    rule("epochs_huge", "train", "epochs", "3000000000", "too large"),
    rule("lr_negative", "train", "lr", "-1e-3", "must be > 0"),
    rule("lr_inf", "train", "lr", "inf", "finite"),
    rule("prior_lr_zero", "train", "prior_lr", "0", "must be > 0"),
    rule("warmup_lr_nan", "train", "warmup_lr", "nan", "finite"),
    rule("beta", "loss", "beta", "-0.5", "must be >= 0"),
    rule("warmup_beta_scale", "train", "warmup_beta_scale", "-1", "must be >= 0"),
    rule("warmup_target", "train", "warmup_target", '"pca"', 'expected one of "none", "tica"'),
    rule("target_weight", "train", "target_weight", "-0.1", "must be >= 0"),
    rule("target_epochs", "train", "target_epochs", "-1", "must be >= 0"),
    ("warmup_target_vae", INPUT + '[model]\ntype = "vae"\n[train]\nwarmup_target = "tica"\n', [],
     ["warmup_target_vae.toml:6:", 'train.warmup_target = "tica" shapes DynamicsAE\'s warm-up', 'model.type = "vae"']),
    rule("max_centers", "cluster", "max_centers", "0", "must be >= 1"),
    rule("seed", "train", "seed", "-1", "must be >= 0"),
    rule("checkpoint_every", "output", "checkpoint_every", "-1", "must be >= 0"),
    rule("checkpoint_steps", "output", "checkpoint_steps", "-2", "must be >= 0"),
    rule("activation", "model", "activation", '"sigmoid"', "model.activation"),
    rule("analysis_grid", "analysis", "grid", "1", "must be >= 2 (found 1)"),
    rule("analysis_margin", "analysis", "margin", "-0.1", "must be >= 0"),
    rule("analysis_force_weight", "analysis", "force_weight", '"frames"', 'expected one of "density", "none"'),
    rule("type_baseline_typo", "model", "type", '"swea"', 'did you mean "swae"?'),
    rule("nu_zero", "loss", "nu", "0", "loss.nu must be > 0 (found 0)"),
    rule("nu_negative", "loss", "nu", "-0.01", "must be > 0"),
    rule("nu_string", "loss", "nu", '"small"', 'must be a number, found string "small"'),
    rule("type_unknown", "model", "type", '"dynamicsea"', 'did you mean "dynamicsae"?'),
    rule("diffusion", "model", "diffusion", '"langevin"', 'expected one of "constant", "learned"'),
    rule("network", "model", "network", '"cnn"', 'expected one of "mlp", "conv"'),
    rule("placement", "data", "placement", '"scattered"', 'expected one of "random", "block"'),
    ("placement_per_rank", INPUT + 'placement = "block"\n[train]\nbatch = "per_rank"\n', [],
     ["placement_per_rank.toml:3:", 'data.placement = "block" needs train.batch = "global"']),
    ("conv_encoder", INPUT + '[model]\nnetwork = "conv"\nencoder = [20]\n', [],
     ["conv_encoder.toml:5:", "model.encoder must be one width, a multiple of 16"]),
    ("conv_decoder", INPUT + '[model]\nnetwork = "conv"\nencoder = [32]\ndecoder = [32, 32]\n', [],
     ["conv_decoder.toml:6:", "model.decoder must be one width"]),
    ("conv_tica", INPUT + 'tica_dim = 3\n[model]\nnetwork = "conv"\nencoder = [32]\ndecoder = [32]\n', [],
     ["conv_tica.toml:5:", 'model.network = "conv" encodes images', "data.tica_dim"]),
    # the baselines take the image nets too, with the same rules
    ("conv_vae_encoder", INPUT + '[model]\ntype = "vae"\nnetwork = "conv"\nencoder = [24]\ndecoder = [32]\n', [],
     ["conv_vae_encoder.toml:6:", "model.encoder must be one width, a multiple of 16"]),
    ("conv_sdevae_decoder", INPUT + '[model]\ntype = "sdevae"\nnetwork = "conv"\nencoder = [32]\ndecoder = [16, 16]\n', [],
     ["conv_sdevae_decoder.toml:7:", "model.decoder must be one width"]),
    rule("dir_empty", "output", "dir", '""', "must not be empty"),
    # data entries
    ("input_missing", "[data]\nlag = 2\n", [], ["input_missing.toml:1:", "data.input is required"]),
    ("no_data_section", "[train]\nepochs = 2\n", [], ["no_data_section.toml: ", "data.input is required", "no [data] section"]),
    ("input_empty", "[data]\ninput = []\n", [], ["input_empty.toml:2:", "data.input is empty"]),
    ("input_no_colon", '[data]\ninput = ["traj.h5"]\n', [], ["input_no_colon.toml:2:", "data.input[0]", "FILE:DATASET"]),
    ("input_no_dataset", '[data]\ninput = ["a.h5:/x",\n  "b.h5:/"]\n', [], ["input_no_dataset.toml:3:", "data.input[1]", "no dataset"]),
    ("input_no_file", '[data]\ninput = [":/x"]\n', [], ["input_no_file.toml:2:", "data.input[0]", "FILE:DATASET"]),
    ("input_item_line", '[data]\ninput = [\n  "a.h5:/x",\n  7,\n]\n', [], ["input_item_line.toml:4:", "data.input[1]", "found integer 7"]),
    ("target_count", '[data]\ninput = ["a.h5:/x"]\ntarget = ["y.h5:/t", "z.h5:/t"]\n', [],
     ["target_count.toml:3:", "data.target has 2 entries but data.input has 1"]),
    # TOML syntax
    ("syntax", INPUT + "[train]\nlr = = 1\n", [], ["syntax.toml:4:"]),
    ("duplicate", INPUT + "[train]\nlr = 1e-3\nlr = 2e-3\n", [], ["duplicate.toml:5:"]),
    ("integer_overflow", INPUT + "[train]\nseed = 99999999999999999999\n", [], ["integer_overflow.toml:4:", "64 bits"]),
    ("unterminated", INPUT + '[output]\ndir = "results\n', [], ["unterminated.toml:4:"]),
    ("duplicate_section", INPUT + "[train]\nepochs = 2\n[train]\nseed = 1\n", [], ["duplicate_section.toml:5:"]),
    # --set
    ("set_range", INPUT, ["--set", "train.lr=-1"], ["--set train.lr=-1: train.lr must be > 0"]),
    ("set_unknown", INPUT, ["--set", "train.lrr=1"], ["--set train.lrr=1: unknown key 'train.lrr'", "did you mean 'train.lr'?"]),
    ("set_no_section", INPUT, ["--set", "epochs=3"], ["--set epochs=3: unknown key 'epochs'", "did you mean 'train.epochs'?"]),
    ("set_type", INPUT, ["--set", "train.epochs=abc"], ['--set train.epochs=abc: train.epochs must be an integer, found string "abc"']),
    ("set_word", INPUT, ["--set", "model.diffusion=learnt"], ["--set model.diffusion=learnt: model.diffusion", 'did you mean "learned"?']),
    ("set_list", INPUT, ["--set", "model.encoder=[8, 0]"], ["--set model.encoder=[8, 0]: model.encoder[1] must be >= 1"]),
    ("set_input_empty", INPUT, ["--set", "data.input=[]"], ["--set data.input=[]: data.input is empty"]),
    # a value that is not UTF-8 (found by tests/fuzz): refused as input, not an internal error
    ("set_bad_utf8", INPUT, ["--set", b"model.type=x\x9cy"], ["--set model.type=x", "the value is not UTF-8 text",
                                                            "invalid UTF-8 byte 0x9C"]),
    ("set_two_values", INPUT, ["--set", "train.seed=1\nx = 2"], ["train.seed must be an integer, found string"]),
    ("set_later_wins", INPUT, ["--set", "train.epochs=0", "--set", "train.epochs=5", "--set", "train.batch_size=1"],
     ["--set train.batch_size=1: train.batch_size must be >= 2"]),
    ("set_overrides_file", INPUT + "[train]\nepochs = 0\n", ["--set", "train.epochs=5", "--set", "train.seed=-3"],
     ["--set train.seed=-3: train.seed must be >= 0"]),
    # the file itself
    ("missing_file", None, [], ["cannot read the input file 'missing_file.toml'", "No such file"]),
    ("directory", "DIR", [], ["cannot read the input file 'directory.toml'"]),
]

# Cases run again at 2 ranks under --launcher: the message must appear exactly once.
CASES += [
    ("once_2ranks", INPUT + "[cluster]\nd_mni = 1.0\n", [], ["once_2ranks.toml:4:", "did you mean 'cluster.d_min'?"]),
    ("syntax_2ranks", INPUT + "[model\n", [], ["syntax_2ranks.toml:3:"]),
    ("set_2ranks", INPUT, ["--set", "cluster.gamma=0.1"], ["--set cluster.gamma=0.1: cluster.gamma must be >= 1"]),
]
TWO_RANK_ONLY = {"once_2ranks", "syntax_2ranks", "set_2ranks"}


def main(argv):
    exe = scratch = None
    launcher, only = [], None
    i = 1
    while i < len(argv):
        if argv[i] == "--exe":
            exe, i = os.path.abspath(argv[i + 1]), i + 2
        elif argv[i] == "--dir":
            scratch, i = argv[i + 1], i + 2
        elif argv[i] == "--launcher":
            i += 1
            while i < len(argv) and argv[i] != "--only":
                launcher.append(argv[i])
                i += 1
        elif argv[i] == "--only":
            only, i = set(argv[i + 1:]), len(argv)
        else:
            sys.exit(f"run_bad.py: unknown argument {argv[i]}")
    os.makedirs(scratch, exist_ok=True)
    cases = [c for c in CASES if (c[0] in only if only is not None else c[0] not in TWO_RANK_ONLY)]
    # Each run mostly waits for MPI to start, so a few run at once.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1 if launcher else 4) as pool:
        results = list(pool.map(lambda c: run_case(exe, scratch, launcher, *c), cases))
    failures = [name for (name, _, _, _), ok in zip(cases, results) if not ok]
    print(f"{len(cases) - len(failures)} of {len(cases)} bad inputs refused as expected")
    if not cases or failures:
        sys.exit(1)


def run_case(exe, scratch, launcher, name, text, args, expected):
    """Runs one case; prints its outcome and returns whether it passed."""
    path = os.path.join(scratch, name + ".toml")
    if os.path.isdir(path):
        os.rmdir(path)
    elif os.path.exists(path):
        os.remove(path)
    if text == "DIR":
        os.mkdir(path)
    elif text is not None:
        with open(path, "w") as f:
            f.write(text)
    cmd = launcher + [exe, name + ".toml", "--check"] + args
    p = subprocess.run(cmd, cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       errors="replace", timeout=120)
    out = p.stdout + p.stderr
    problems = []
    if p.returncode != 2:
        problems.append(f"exit code {p.returncode}, expected 2")
    problems += [f"no {s!r} in the output" for s in expected if s not in out]
    if launcher and out.count("dynae-mpi: error:") != 1:
        problems.append(f"{out.count('dynae-mpi: error:')} error messages, expected exactly 1")
    message = next((l for l in out.splitlines() if "error:" in l), out.strip()[:200])
    report = [f"{'FAIL' if problems else 'ok  '} {name}: {message}"]
    if problems:
        report += [f"     {pr}" for pr in problems]
        report += ["     output:"] + ["       " + l for l in out.splitlines()]
    print("\n".join(report), flush=True)
    return not problems


if __name__ == "__main__":
    main(sys.argv)
