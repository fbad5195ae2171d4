# Alert when a task is retrying, with the time of the retry.
import datetime

import requests

from statemachine import Flow, Secret, task


def post_to_slack(task, old_state, new_state):
    if new_state.is_retrying():
        msg = "Task {0} failed and is retrying at {1}".format(task, new_state.start_time)
        requests.post(Secret("SLACK_WEBHOOK_URL").get(), json={"text": msg}, timeout=10)
    return new_state


attempts = []


@task(max_retries=1, retry_delay=datetime.timedelta(seconds=0), state_handlers=[post_to_slack])
def flaky():
    attempts.append(1)
    if len(attempts) == 1:
        raise ConnectionError("first attempt fails")
    return "ok"


with Flow(name="state-handler-demo") as flow:
    flaky()

if __name__ == "__main__":  # `python post_on_retry.py` runs it; `stateledger run` imports, then runs it once
    state = flow.run()
    print(state)
