# LOOP: a task runs again with the result of its previous iteration (Prefect 1's LOOP signal).
from statemachine import Flow, signals, task, taskcontext


def report(task, old_state, new_state):
    if new_state.is_looped() or new_state.is_successful():
        print(f"{type(old_state).__name__} -> {new_state!r} result={new_state.result}")


@task(state_handlers=[report])
def accumulate(start):
    current = taskcontext.get("task_loop_result", start)
    if current < 20:
        raise signals.LOOP(result=current + 5)
    return current


with Flow("looper") as flow:
    total = accumulate(5)

if __name__ == "__main__":  # run as a script; `stateledger run` imports the file, then runs the flow once
    state = flow.run()
    print(state)
    print(state.result[total].result)
