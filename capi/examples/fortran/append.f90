! Shared appends from Fortran (`use brlock`): every rank appends RECORDS records (rank,
! sequence number, a payload derived from both) through brlock's shared file pointer; rank 0
! reads the file back and checks that each record is there once and intact.
! Usage: mpirun -np P append FILE [RECORDS]
program append_example
    use mpi_f08
    use brlock
    use, intrinsic :: iso_c_binding
    implicit none
    integer, parameter :: words = 6
    type(c_ptr) :: file
    integer :: rank, nranks, i, j, records, unit, ios, ierr
    integer(c_int64_t) :: offset, fsize
    integer(c_int32_t), target :: rec(words)
    integer(c_int32_t) :: got(words)
    integer, allocatable :: seen(:, :)
    integer :: missing, duplicates, corrupt
    character(len=4096) :: path, arg

    call MPI_Init()
    call MPI_Comm_rank(MPI_COMM_WORLD, rank)
    call MPI_Comm_size(MPI_COMM_WORLD, nranks)
    call get_command_argument(1, path)
    records = 1000
    if (command_argument_count() > 1) then
        call get_command_argument(2, arg)
        read (arg, *) records
    end if

    call check(brlock_append_open(MPI_COMM_WORLD%MPI_VAL, brlock_cstr(path), BRLOCK_APPEND_TRUNCATE, file), 'open')
    do i = 1, records
        rec(1) = rank
        rec(2) = i
        do j = 3, words
            rec(j) = rank * 1000003 + i * 7 + j
        end do
        call check(brlock_append_write(file, c_loc(rec), int(words * 4, c_size_t), offset), 'append')
    end do
    call check(brlock_append_close(file, fsize), 'close')

    if (rank == 0) then
        allocate (seen(0:nranks - 1, records))
        seen = 0
        corrupt = 0
        open (newunit=unit, file=trim(path), access='stream', form='unformatted', status='old')
        do
            read (unit, iostat=ios) got
            if (ios /= 0) exit
            if (got(1) < 0 .or. got(1) >= nranks .or. got(2) < 1 .or. got(2) > records) then
                corrupt = corrupt + 1
                cycle
            end if
            do j = 3, words
                if (got(j) /= got(1) * 1000003 + got(2) * 7 + j) then
                    corrupt = corrupt + 1
                    exit
                end if
            end do
            seen(got(1), got(2)) = seen(got(1), got(2)) + 1
        end do
        close (unit)
        missing = count(seen == 0)
        duplicates = count(seen > 1)
        print '(a,i0,a,i0,a,i0,a,i0,a,i0,a,i0,a,l1)', 'append ranks=', nranks, ' records=', &
            nranks * records, ' bytes=', fsize, ' missing=', missing, ' duplicates=', duplicates, &
            ' corrupt=', corrupt, ' ok=', missing == 0 .and. duplicates == 0 .and. corrupt == 0 &
            .and. fsize == int(nranks, c_int64_t) * records * words * 4
    end if
    call MPI_Finalize(ierr)
contains
    subroutine check(status, what)
        integer(c_int), intent(in) :: status
        character(len=*), intent(in) :: what
        if (status /= BRLOCK_OK) then
            print '(a)', what//': '//brlock_last_error()
            call MPI_Abort(MPI_COMM_WORLD, 1)
        end if
    end subroutine
end program
