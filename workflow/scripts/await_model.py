"""Model completion (manual): is the user's rebuilt model there? Writes status 'ready' (checked) or 'waiting'."""

from _wf import run, write_json


def main(smk):
    from locscale.mapio import read_map
    from locscale.models import check_model_in_map, read_model

    cycle = int(smk.wildcards.cycle)
    a, b = smk.params.candidates
    user_model = smk.input.get("user_model")
    if user_model:
        check_model_in_map(read_model(user_model), read_map(smk.input.locscale))
        status = {"status": "ready", "model": user_model, "cycle": cycle,
                  "message": f"rebuilt model {user_model} enters cycle {cycle + 1}"}
    else:
        status = {"status": "waiting", "model": None, "cycle": cycle,
                  "message": f"put the rebuilt model at {a} (or {b}) and run snakemake again; build it against "
                             f"{smk.input.locscale}"}
    write_json(smk.output[0], status)
    print(status["message"])


run(main)
