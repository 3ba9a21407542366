/* An MPI program: MPI_Init, its rank and size, MPI_Finalize. */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = -1, size = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    printf("mpi rank %d of %d\n", rank, size);
    MPI_Finalize();
    return 0;
}
