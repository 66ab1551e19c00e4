"""Question 4: the hinge network on the raw 784 pixels against the same recipes on PCA 128.

The first two runs are the study's rows (no PCA: 784 inputs); the last two repeat them
on 128 PCA features (robustkit only).

    python examples/reproduce/q4_raw_pixels.py --data-dir DATA [--quick]
"""

from trainruns import TrainRun, main

QUESTION = 4
RUNS = [
    TrainRun("hinge:epochs=3,batch_size=1,lr=0.001", "hinge", 0),
    TrainRun("hinge:epochs=20,batch_size=128,lr=0.05", "hinge", 1),
    TrainRun("hinge:epochs=3,batch_size=1,lr=0.001,pca=128", "hinge, PCA"),
    TrainRun("hinge:epochs=20,batch_size=128,lr=0.05,pca=128", "hinge, PCA"),
]

if __name__ == "__main__":
    main(QUESTION, RUNS, __doc__)
