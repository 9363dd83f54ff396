! Byte-range locks from Fortran (`use brlock`): every rank increments a counter in a shared
! file under an exclusive lock on a range overlapping it; rank 0 checks the count.
! Usage: mpirun -np P lock FILE [ROUNDS]
! Build: mpifort lock.f90 PREFIX/lib/libbrlock_fortran.a $(pkg-config --cflags --libs brlock)
program lock_example
    use mpi_f08
    use brlock
    use, intrinsic :: iso_c_binding
    implicit none
    type(c_ptr) :: lock
    integer :: rank, nranks, i, rounds, ierr, unit
    integer(c_int) :: status
    integer(c_int64_t) :: counter, expected
    character(len=4096) :: path, arg

    call MPI_Init()
    call MPI_Comm_rank(MPI_COMM_WORLD, rank)
    call MPI_Comm_size(MPI_COMM_WORLD, nranks)
    call get_command_argument(1, path)
    rounds = 50
    if (command_argument_count() > 1) then
        call get_command_argument(2, arg)
        read (arg, *) rounds
    end if

    if (rank == 0) then
        open (newunit=unit, file=trim(path), access='stream', form='unformatted', status='replace')
        write (unit, pos=1) 0_c_int64_t
        close (unit)
    end if
    call MPI_Barrier(MPI_COMM_WORLD)

    status = brlock_lock_open(MPI_COMM_WORLD%MPI_VAL, 0_c_int, lock)
    call check(status, 'brlock_lock_open')
    do i = 1, rounds
        call check(brlock_lock_lock(lock, int(mod(rank, 8), c_int64_t), 8_c_int64_t, BRLOCK_EXCLUSIVE), 'lock')
        ! Unbuffered enough for this: the file is opened and closed under the lock.
        open (newunit=unit, file=trim(path), access='stream', form='unformatted', status='old')
        read (unit, pos=1) counter
        write (unit, pos=1) counter + 1
        close (unit)
        call check(brlock_lock_unlock(lock), 'unlock')
    end do
    call check(brlock_lock_close(lock), 'brlock_lock_close')

    call MPI_Barrier(MPI_COMM_WORLD)
    if (rank == 0) then
        open (newunit=unit, file=trim(path), access='stream', form='unformatted', status='old')
        read (unit, pos=1) counter
        close (unit)
        expected = int(nranks, c_int64_t) * rounds
        print '(a,i0,a,i0,a,i0,a,l1)', 'lock ranks=', nranks, ' counter=', counter, &
            ' expected=', expected, ' ok=', counter == expected
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
