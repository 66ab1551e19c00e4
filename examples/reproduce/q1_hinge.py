"""Question 1: the hinge network on 128 PCA features, the study's five (epochs, batch, lr) rows.

PCA is part of the model (``pca=128``): fitted on the [0, 1]-scaled training pixels, so
the network's 128 inputs are the study's PCA features.

    python examples/reproduce/q1_hinge.py --data-dir DATA [--quick]
"""

from trainruns import TrainRun, main

QUESTION = 1
RUNS = [
    TrainRun("hinge:epochs=10,batch_size=128,lr=0.05,pca=128", "hinge", 0),
    TrainRun("hinge:epochs=20,batch_size=128,lr=0.005,pca=128", "hinge", 1),
    TrainRun("hinge:epochs=5,batch_size=128,lr=0.2,pca=128", "hinge", 2),
    TrainRun("hinge:epochs=5,batch_size=128,lr=0.1,pca=128", "hinge", 3),
    TrainRun("hinge:epochs=15,batch_size=128,lr=0.1,pca=128", "hinge", 4),
]

if __name__ == "__main__":
    main(QUESTION, RUNS, __doc__)
