"""Question 3: batch size 1 (plain SGD) against minibatches of 128 at the same epochs and lr.

The first three runs are the study's rows; the last three repeat them with batch size 128
(robustkit only), which is the comparison the question asks for.

    python examples/reproduce/q3_sgd.py --data-dir DATA [--quick]
"""

from trainruns import TrainRun, main

QUESTION = 3
RUNS = [
    TrainRun("hinge:epochs=5,batch_size=1,lr=0.01,pca=128", "hinge", 0),
    TrainRun("hinge:epochs=5,batch_size=1,lr=0.005,pca=128", "hinge", 1),
    # At batch size 1, lr 0.1 on the unscaled PCA features overflows; the fallback trains
    # on the data set's PCA features, which the network rescales to a range of 1.
    TrainRun(
        "rbf:epochs=10,batch_size=1,lr=0.1,pca=128",
        "rbf",
        2,
        fallback=("rbf:epochs=10,batch_size=1,lr=0.1", "fashion-mnist:pca=128"),
    ),
    TrainRun("hinge:epochs=5,batch_size=128,lr=0.01,pca=128", "hinge, minibatch"),
    TrainRun("hinge:epochs=5,batch_size=128,lr=0.005,pca=128", "hinge, minibatch"),
    TrainRun("rbf:epochs=10,batch_size=128,lr=0.1,pca=128", "rbf, minibatch"),
]

if __name__ == "__main__":
    main(QUESTION, RUNS, __doc__)
