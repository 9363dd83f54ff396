! The Fortran module `brlock` (`use brlock`): the C API of brlock (brlock.h) through
! iso_c_binding. Handles are `type(c_ptr)`; every function returns the C status code
! (BRLOCK_OK = 0). Communicators are Fortran handles: pass `comm%MPI_VAL` for a
! `type(MPI_Comm)` of `use mpi_f08`, or the integer of `use mpi`. Paths must end with
! `c_null_char` (or use brlock_cstr). Installed by `scripts/install.sh --fortran`; see
! docs/c-api.md, "Fortran".
module brlock
    use, intrinsic :: iso_c_binding
    implicit none
    private :: c_int, c_ptr, c_char, c_size_t, c_double, c_int64_t

    integer(c_int), parameter :: BRLOCK_OK = 0
    integer(c_int), parameter :: BRLOCK_ERR_NULL = 1
    integer(c_int), parameter :: BRLOCK_ERR_INVALID_ARGUMENT = 2
    integer(c_int), parameter :: BRLOCK_ERR_RANGE = 3
    integer(c_int), parameter :: BRLOCK_ERR_ALREADY_HELD = 4
    integer(c_int), parameter :: BRLOCK_ERR_NOT_HELD = 5
    integer(c_int), parameter :: BRLOCK_ERR_MPI = 6
    integer(c_int), parameter :: BRLOCK_ERR_IO = 7
    integer(c_int), parameter :: BRLOCK_ERR_SHORT_READ = 8
    integer(c_int), parameter :: BRLOCK_ERR_POISONED = 9
    integer(c_int), parameter :: BRLOCK_ERR_DEADLOCK = 10
    integer(c_int), parameter :: BRLOCK_ERR_REFUSED = 11
    integer(c_int), parameter :: BRLOCK_ERR_WRONG_MPI = 12
    integer(c_int), parameter :: BRLOCK_ERR_COLLECTIVE = 13
    integer(c_int), parameter :: BRLOCK_ERR_INTERNAL = 14
    integer(c_int), parameter :: BRLOCK_SHARED = 1
    integer(c_int), parameter :: BRLOCK_EXCLUSIVE = 2
    integer(c_int), parameter :: BRLOCK_APPEND_TRUNCATE = 1
    integer(c_int), parameter :: BRLOCK_ATOMIC_CREATE = 1

    interface
        ! Collective: open a lock service over the Fortran communicator `comm`.
        integer(c_int) function brlock_lock_open(comm, home, lock) bind(C, name="brlock_lock_open_f")
            import :: c_int, c_ptr
            integer(c_int), value :: comm, home
            type(c_ptr), intent(out) :: lock
        end function
        integer(c_int) function brlock_lock_lock(lock, offset, length, mode) bind(C, name="brlock_lock_lock")
            import :: c_int, c_ptr, c_int64_t
            type(c_ptr), value :: lock
            integer(c_int64_t), value :: offset, length
            integer(c_int), value :: mode
        end function
        integer(c_int) function brlock_lock_trylock(lock, offset, length, mode, acquired) &
                bind(C, name="brlock_lock_trylock")
            import :: c_int, c_ptr, c_int64_t
            type(c_ptr), value :: lock
            integer(c_int64_t), value :: offset, length
            integer(c_int), value :: mode
            integer(c_int), intent(out) :: acquired
        end function
        integer(c_int) function brlock_lock_timeout(lock, offset, length, mode, seconds, acquired) &
                bind(C, name="brlock_lock_timeout")
            import :: c_int, c_ptr, c_int64_t, c_double
            type(c_ptr), value :: lock
            integer(c_int64_t), value :: offset, length
            integer(c_int), value :: mode
            real(c_double), value :: seconds
            integer(c_int), intent(out) :: acquired
        end function
        integer(c_int) function brlock_lock_unlock(lock) bind(C, name="brlock_lock_unlock")
            import :: c_int, c_ptr
            type(c_ptr), value :: lock
        end function
        ! Collective; sets `lock` to c_null_ptr.
        integer(c_int) function brlock_lock_close(lock) bind(C, name="brlock_lock_close")
            import :: c_int, c_ptr
            type(c_ptr), intent(inout) :: lock
        end function

        ! Collective: open `path` (NUL-terminated) for shared appends.
        integer(c_int) function brlock_append_open(comm, path, flags, file) bind(C, name="brlock_append_open_f")
            import :: c_int, c_ptr, c_char
            integer(c_int), value :: comm, flags
            character(kind=c_char), dimension(*), intent(in) :: path
            type(c_ptr), intent(out) :: file
        end function
        ! Appends `length` bytes at `data` (pass c_loc(buffer)); the offset in `offset`.
        integer(c_int) function brlock_append_write(file, data, length, offset) bind(C, name="brlock_append_write")
            import :: c_int, c_ptr, c_size_t, c_int64_t
            type(c_ptr), value :: file, data
            integer(c_size_t), value :: length
            integer(c_int64_t), intent(out) :: offset
        end function
        ! Collective: every rank's block back to back in rank order.
        integer(c_int) function brlock_append_ordered(file, data, length, offset) bind(C, name="brlock_append_ordered")
            import :: c_int, c_ptr, c_size_t, c_int64_t
            type(c_ptr), value :: file, data
            integer(c_size_t), value :: length
            integer(c_int64_t), intent(out) :: offset
        end function
        integer(c_int) function brlock_append_sync(file) bind(C, name="brlock_append_sync")
            import :: c_int, c_ptr
            type(c_ptr), value :: file
        end function
        ! Collective; sets `file` to c_null_ptr and `size` to the file's end.
        integer(c_int) function brlock_append_close(file, size) bind(C, name="brlock_append_close")
            import :: c_int, c_ptr, c_int64_t
            type(c_ptr), intent(inout) :: file
            integer(c_int64_t), intent(out) :: size
        end function

        ! Collective: open `path` (NUL-terminated) as an atomic file; atomic mode starts off.
        integer(c_int) function brlock_atomic_open(comm, path, flags, file) bind(C, name="brlock_atomic_open_f")
            import :: c_int, c_ptr, c_char
            integer(c_int), value :: comm, flags
            character(kind=c_char), dimension(*), intent(in) :: path
            type(c_ptr), intent(out) :: file
        end function
        ! Collective: the same value on every rank (0 off, 1 on).
        integer(c_int) function brlock_atomic_set_atomicity(file, atomic) bind(C, name="brlock_atomic_set_atomicity")
            import :: c_int, c_ptr
            type(c_ptr), value :: file
            integer(c_int), value :: atomic
        end function
        integer(c_int) function brlock_atomic_get_atomicity(file, atomic) bind(C, name="brlock_atomic_get_atomicity")
            import :: c_int, c_ptr
            type(c_ptr), value :: file
            integer(c_int), intent(out) :: atomic
        end function
        ! Reads `length` bytes at byte `offset` into `buf` (pass c_loc(buffer)).
        integer(c_int) function brlock_atomic_read_at(file, offset, buf, length) bind(C, name="brlock_atomic_read_at")
            import :: c_int, c_ptr, c_int64_t, c_size_t
            type(c_ptr), value :: file, buf
            integer(c_int64_t), value :: offset
            integer(c_size_t), value :: length
        end function
        integer(c_int) function brlock_atomic_write_at(file, offset, data, length) bind(C, name="brlock_atomic_write_at")
            import :: c_int, c_ptr, c_int64_t, c_size_t
            type(c_ptr), value :: file, data
            integer(c_int64_t), value :: offset
            integer(c_size_t), value :: length
        end function
        ! `count` pieces (offsets(i), lengths(i)), sorted and disjoint; `buf` holds their bytes
        ! back to back, `length` in all.
        integer(c_int) function brlock_atomic_read_pieces(file, offsets, lengths, count, buf, length) &
                bind(C, name="brlock_atomic_read_pieces")
            import :: c_int, c_ptr, c_int64_t, c_size_t
            type(c_ptr), value :: file, buf
            integer(c_int64_t), dimension(*), intent(in) :: offsets, lengths
            integer(c_size_t), value :: count, length
        end function
        integer(c_int) function brlock_atomic_write_pieces(file, offsets, lengths, count, data, length) &
                bind(C, name="brlock_atomic_write_pieces")
            import :: c_int, c_ptr, c_int64_t, c_size_t
            type(c_ptr), value :: file, data
            integer(c_int64_t), dimension(*), intent(in) :: offsets, lengths
            integer(c_size_t), value :: count, length
        end function
        ! Collective.
        integer(c_int) function brlock_atomic_sync(file) bind(C, name="brlock_atomic_sync")
            import :: c_int, c_ptr
            type(c_ptr), value :: file
        end function
        ! Collective; sets `file` to c_null_ptr.
        integer(c_int) function brlock_atomic_close(file) bind(C, name="brlock_atomic_close")
            import :: c_int, c_ptr
            type(c_ptr), intent(inout) :: file
        end function

        type(c_ptr) function brlock_strerror_c(code) bind(C, name="brlock_strerror")
            import :: c_int, c_ptr
            integer(c_int), value :: code
        end function
        type(c_ptr) function brlock_last_error_c() bind(C, name="brlock_last_error")
            import :: c_ptr
        end function
        integer(c_size_t) function strlen_c(s) bind(C, name="strlen")
            import :: c_size_t, c_ptr
            type(c_ptr), value :: s
        end function
    end interface

contains

    ! A Fortran string as a NUL-terminated C string (trailing blanks removed).
    function brlock_cstr(s) result(c)
        character(len=*), intent(in) :: s
        character(kind=c_char, len=len_trim(s) + 1) :: c
        c = trim(s)//c_null_char
    end function

    ! The C string at `p` as a Fortran string.
    function from_c(p) result(s)
        type(c_ptr), intent(in) :: p
        character(len=:), allocatable :: s
        character(kind=c_char), pointer :: chars(:)
        integer :: i, n
        n = int(strlen_c(p))
        call c_f_pointer(p, chars, [n])
        allocate (character(len=n) :: s)
        do i = 1, n
            s(i:i) = chars(i)
        end do
    end function

    ! brlock_strerror(code) as a Fortran string.
    function brlock_strerror(code) result(s)
        integer(c_int), intent(in) :: code
        character(len=:), allocatable :: s
        s = from_c(brlock_strerror_c(code))
    end function

    ! brlock_last_error() of this thread as a Fortran string.
    function brlock_last_error() result(s)
        character(len=:), allocatable :: s
        s = from_c(brlock_last_error_c())
    end function
end module brlock
