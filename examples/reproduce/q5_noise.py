"""Question 5: Gaussian noise in the training data of the RBF network (20 epochs, batch 128).

``noise_std=0.1`` adds fresh N(0, 0.1²) noise to every training input in every epoch, in
[0, 1] pixel units (0.1 ≈ 25 of 255 grey levels; the network sees its projection on the
128 PCA components). The second run is the same recipe without noise (robustkit only).

    python examples/reproduce/q5_noise.py --data-dir DATA [--quick]
"""

from trainruns import TrainRun, main

QUESTION = 5
NOISE_STD = 0.1
RUNS = [
    TrainRun(
        f"rbf:epochs=20,batch_size=128,lr=0.05,pca=128,noise_std={NOISE_STD}",
        f"rbf, noise σ={NOISE_STD}",
        0,
    ),
    TrainRun("rbf:epochs=20,batch_size=128,lr=0.05,pca=128", "rbf, no noise"),
]

if __name__ == "__main__":
    main(QUESTION, RUNS, __doc__)
