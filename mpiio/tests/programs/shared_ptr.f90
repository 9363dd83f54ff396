! Shared file pointer check from Fortran: every rank appends NBLOCKS blocks of NINTS integers
! with MPI_File_write_shared (values unique over the job); rank 0 reads the file back and
! checks that every value is there once. Prints "shared_ptr_f: OK ..." or
! "shared_ptr_f: FAILED ..." (exit status 1). Usage: shared_ptr_f FILE
program shared_ptr_f
    use mpi
    implicit none
    integer, parameter :: nblocks = 32, nints = 16
    integer :: ierr, rank, nranks, fh, b, i, total, present, v, status_code
    integer :: status(MPI_STATUS_SIZE)
    integer :: buf(nints)
    integer, allocatable :: all(:), seen(:)
    character(len=1024) :: path
    integer(kind=MPI_OFFSET_KIND) :: fsize

    call MPI_Init(ierr)
    call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
    call MPI_Comm_size(MPI_COMM_WORLD, nranks, ierr)
    call get_command_argument(1, path)
    if (rank == 0) call MPI_File_delete(trim(path), MPI_INFO_NULL, ierr)
    call MPI_Barrier(MPI_COMM_WORLD, ierr)
    call MPI_File_open(MPI_COMM_WORLD, trim(path), ior(MPI_MODE_CREATE, MPI_MODE_RDWR), &
                       MPI_INFO_NULL, fh, ierr)
    if (ierr /= MPI_SUCCESS) call MPI_Abort(MPI_COMM_WORLD, 1, ierr)
    do b = 0, nblocks - 1
        do i = 1, nints
            buf(i) = (rank * nblocks + b) * nints + i
        end do
        call MPI_File_write_shared(fh, buf, nints, MPI_INTEGER, status, ierr)
        if (ierr /= MPI_SUCCESS) call MPI_Abort(MPI_COMM_WORLD, 1, ierr)
    end do
    call MPI_File_sync(fh, ierr)
    call MPI_Barrier(MPI_COMM_WORLD, ierr)
    call MPI_File_sync(fh, ierr)
    call MPI_File_close(fh, ierr)
    call MPI_Barrier(MPI_COMM_WORLD, ierr)

    status_code = 0
    if (rank == 0) then
        total = nranks * nblocks * nints
        allocate(all(total), seen(total))
        seen = 0
        all = 0
        call MPI_File_open(MPI_COMM_SELF, trim(path), MPI_MODE_RDONLY, MPI_INFO_NULL, fh, ierr)
        call MPI_File_get_size(fh, fsize, ierr)
        call MPI_File_read_at(fh, 0_MPI_OFFSET_KIND, all, total, MPI_INTEGER, status, ierr)
        call MPI_File_close(fh, ierr)
        present = 0
        do i = 1, total
            v = all(i)
            if (v >= 1 .and. v <= total) then
                if (seen(v) == 0) present = present + 1
                seen(v) = seen(v) + 1
            end if
        end do
        ! Every value present once in `total` slots: none lost, none overlapping. (The size
        ! this client reports may be stale across clients: shown, not judged.)
        if (present /= total) status_code = 1
        if (status_code == 0) then
            print '(a,i0,a,i0,a,i0,a)', 'shared_ptr_f: OK: ', present, ' of ', total, &
                ' integers present, file of ', fsize, ' bytes'
        else
            print '(a,i0,a,i0,a,i0,a)', 'shared_ptr_f: FAILED: ', present, ' of ', total, &
                ' integers present, file of ', fsize, ' bytes'
        end if
    end if
    call MPI_Bcast(status_code, 1, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
    call MPI_Finalize(ierr)
    if (status_code /= 0) stop 1
end program shared_ptr_f
