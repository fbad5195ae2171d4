# Map a task over a list: each item is a task run of its own (key fetch-1[i]), with the
# mapped task's state handler called for every child; a reduce step gets the list.
import datetime

from eventstore import EventStore
from statemachine import Flow, task, taskcontext, unmapped


def report(task, old_state, new_state):
    index = taskcontext.get("map_index")
    who = task.name if index is None else f"{task.name}[{index}]"
    if new_state.is_mapped() or new_state.is_finished() or new_state.is_retrying():
        print(f"{who}: {type(old_state).__name__} -> {new_state!r}")


attempts = {}


@task(max_retries=1, retry_delay=datetime.timedelta(0), state_handlers=[report])
def fetch(city, unit):
    attempts[city] = attempts.get(city, 0) + 1
    if city == "Oslo" and attempts[city] == 1:
        raise ConnectionError("weather service busy")
    return f"{city}: 20 {unit}"


@task
def summary(lines):
    return "; ".join(lines)


with Flow("weather") as flow:
    readings = fetch.map(["Lyon", "Oslo", "Lima"], unit=unmapped("C"))
    text = summary(readings)

if __name__ == "__main__":  # run as a script; `stateledger run` imports the file, then runs the flow once
    state = flow.run()
    print(state)
    print(state.result[readings].result)
    print(state.result[text].result)

    with EventStore() as store:  # the ledger the run was recorded in (STATELEDGER_DB)
        view = store.rebuild(state.context["run_id"])
    print({key: type(s).__name__ for key, s in view.tasks.items()})
