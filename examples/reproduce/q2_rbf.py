"""Question 2: the RBF network (GELU hidden layer, distances to learned centres), three rows.

python examples/reproduce/q2_rbf.py --data-dir DATA [--quick]
"""

from trainruns import TrainRun, main

QUESTION = 2
RUNS = [
    TrainRun("rbf:epochs=10,batch_size=128,lr=0.05,pca=128", "rbf", 0),
    TrainRun("rbf:epochs=10,batch_size=128,lr=0.1,pca=128", "rbf", 1),
    TrainRun("rbf:epochs=10,batch_size=128,lr=0.01,pca=128", "rbf", 2),
]

if __name__ == "__main__":
    main(QUESTION, RUNS, __doc__)
