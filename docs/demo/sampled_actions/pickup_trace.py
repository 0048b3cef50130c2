"""How a model's PickupLoc episodes end: success, the wrong object picked up, pickup facing nothing, or no pickup at all.

    python pickup_trace.py MODEL [EPISODES] [TEMPERATURE]

Plays seeds 1000, 1001, ... on the current timestep alone, no prompt (how `evaluate` acts for a model trained on
short-context samples), and prints one line per episode: the mission, how it ended, the first pickup and what was in
front of the agent then, and how often each action was taken (0 left, 1 right, 2 forward, 3 pickup).
"""

import collections
import sys

from modeling_gato import GatoForCausalModeling, GatoProcessor
from modeling_gato.agent import GatoAgent
from modeling_gato.envs.tasks import make_env

PICKUP = 3


def main(model_dir: str, episodes: int = 20, temperature: float = 0.0) -> None:
    model = GatoForCausalModeling.from_pretrained(model_dir).eval()
    processor = GatoProcessor.from_pretrained(model_dir)
    env = make_env("BabyAI-PickupLoc-v0", seed=1)
    agent = GatoAgent(model, processor, env.observation_space, env.action_space, history_steps=1, prompt_tokens=0,
                      temperature=temperature)
    endings = collections.Counter()
    for seed in range(1000, 1000 + episodes):
        observation, _ = env.reset(seed=seed)
        agent.reset(seed=seed)
        level, mission, actions, first_pickup, reward = env.unwrapped, observation["mission"], [], None, 0.0
        for step in range(level.max_steps):
            action = int(agent.act(observation))
            actions.append(action)
            if action == PICKUP and first_pickup is None:
                front = level.grid.get(*level.front_pos)
                first_pickup = (step, "nothing" if front is None else f"{front.color} {front.type}")
            observation, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        if reward > 0:
            ending = "success"
        elif level.carrying is not None:
            ending = "wrong object"
        else:
            ending = "pickup facing nothing" if first_pickup else "never picked up"
        endings[ending] += 1
        print(f"{seed} | {mission} | {ending} | first pickup {first_pickup} | actions "
              f"{collections.Counter(actions).most_common()} | {len(actions)} steps")
    print(dict(endings))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(arguments[0], int(arguments[1]) if len(arguments) > 1 else 20,
         float(arguments[2]) if len(arguments) > 2 else 0.0)
