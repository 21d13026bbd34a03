"""tools/compare_models.py end to end: usage test_compare.py DYNAE_MPI MPIEXEC [images] (exit 0: pass).

Without `images`: a small three-well, the four models on MLPs. With it: a tiny sprite movie
(frames, 64, 64), the four models on the convolutional networks of the default configuration,
DynamicsAE alone with its start from the TICs; --reference is refused there (exit 2)."""
import json
import os
import subprocess
import sys
import tempfile

import h5py

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")


def main():
    exe, mpiexec = sys.argv[1], sys.argv[2]
    images = sys.argv[3:] == ["images"]
    with tempfile.TemporaryDirectory() as tmp:
        if images:
            data = os.path.join(tmp, "sprites.h5")
            subprocess.run([sys.executable, os.path.join(TOOLS, "gen_sprites.py"), "--frames", "200", "--step", "3",
                            "--out", data], check=True, capture_output=True)
            # 200 frames of 4096 pixels: DynamicsAE's TICA start keeps fewer components (tica.epsilon)
            budget = ["--msm-lag", "5", "--clusters", "10", "--set", "train.batch_size=16", "--set",
                      "tica.epsilon=0.1", "--set", "cluster.d_min=20"]
        else:
            data = os.path.join(tmp, "tw.h5")
            subprocess.run([sys.executable, os.path.join(TOOLS, "gen_three_well.py"), "--frames", "4000", "--out",
                            data, "--quiet"], check=True)
            budget = ["--msm-lag", "10", "--clusters", "20", "--set", "train.batch_size=64"]
        out = os.path.join(tmp, "cmp")
        cmd = [sys.executable, os.path.join(TOOLS, "compare_models.py"), data + ":/observed", "--truth",
               data + ":/truth", "--epochs", "2", "--out", out, "--exe", exe, "--mpiexec", mpiexec, *budget]
        p = subprocess.run(cmd, capture_output=True, text=True)
        print(p.stdout, p.stderr)
        bad = []
        if p.returncode != 0:
            bad.append(f"exit code {p.returncode}")
        lines = p.stdout.splitlines()
        for name in ("truth", "dynae-mpi dynamicsae", "dynae-mpi vae", "dynae-mpi swae", "dynae-mpi sdevae"):
            if not any(l.startswith(name + " ") for l in lines):
                bad.append(f"no row '{name}'")
        t = json.load(open(os.path.join(out, "table.json")))
        for name, r in t["rows"].items():
            if not (0 <= r["r2"] <= 1 and r["sv_ratio"] >= 1 and r["distance_spread"] >= 1 and r["epoch_seconds"] > 0 and len(r["timescales"]) == 2):
                bad.append(f"row {name}: {r}")
        again = subprocess.run(cmd, capture_output=True, text=True)
        if again.returncode != 0 or json.load(open(os.path.join(out, "table.json")))["rows"] != t["rows"]:
            bad.append("a second call did not reuse the runs")
        missing = subprocess.run(cmd[:4] + [data + ":/nothing"] + cmd[5:], capture_output=True, text=True)
        if missing.returncode != 2 or "no dataset /nothing" not in missing.stderr:
            bad.append(f"missing truth: exit {missing.returncode}, {missing.stderr.strip()}")
        if images:
            with open(os.path.join(out, "compare.toml")) as fp:
                text = fp.read()
                if 'network = "conv"' not in text or "beta = 100.0" not in text:
                    bad.append("the default configuration for images lacks model.network = \"conv\" or beta 100")
            # DynamicsAE starts from the TICs (train.warmup_target), the baselines, which have no
            # warm-up, are run without the key
            for model in ("dynamicsae", "vae", "swae", "sdevae"):
                with h5py.File(os.path.join(out, f"dynae_{model}", "results.h5"), "r") as f:
                    eff = f.attrs["config"]
                eff = eff.decode() if isinstance(eff, bytes) else str(eff)
                want = '"tica"' if model == "dynamicsae" else '"none"'
                if f"warmup_target = {want}" not in eff:
                    bad.append(f"{model}: its effective configuration lacks warmup_target = {want}")
            refdir = os.path.join(tmp, "reference")  # a stand-in: refused before it would run
            os.makedirs(refdir)
            open(os.path.join(refdir, "main.py"), "w").close()
            ref = subprocess.run(cmd + ["--reference", refdir], capture_output=True, text=True)
            if ref.returncode != 2 or "holds images" not in ref.stderr:
                bad.append(f"--reference on images: exit {ref.returncode}, {ref.stderr.strip()}")
    for b in bad:
        print("FAIL:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
