# Post to a webhook (Slack or any other) when a task finishes.
# The webhook URL is a secret: env STATELEDGER_SECRET_SLACK_WEBHOOK_URL, or SLACK_WEBHOOK_URL in ~/.stateledger/secrets.toml.
import requests

from statemachine import Task, Flow, Secret


def post_to_slack(task, old_state, new_state):
    if new_state.is_finished():
        msg = "Task {0} finished in state {1}".format(task, new_state)
        requests.post(Secret("SLACK_WEBHOOK_URL").get(), json={"text": msg}, timeout=10)
    return new_state


t = Task(state_handlers=[post_to_slack])
flow = Flow(name="state-handler-demo", tasks=[t])

if __name__ == "__main__":  # `python post_on_finish.py` runs it; `stateledger run` imports, then runs it once
    flow.run()
