/*
 * degu._cparse, part two: held_sender(), a socket send that keeps the GIL
 * when it cannot block.  Compiled into the same extension as _cparse.c
 * (setup.py), which adds these functions to the module.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/*
 * socket.send() releases the GIL around the syscall, as it must when the
 * call may block.  On a busy thread-per-connection server that costs more
 * than the send: each release wakes a thread waiting for the GIL, and this
 * thread then waits its turn to take it back, a futex round trip and two
 * context switches for a syscall that takes a few microseconds.  A small
 * send that cannot block (MSG_DONTWAIT) is cheaper done with the GIL held.
 * When it would block, or a signal interrupts it, the socket's own send()
 * takes over (it blocks with the GIL released, honours the timeout and runs
 * signal handlers); an error is the OSError socket.send() raises, made the
 * same way from errno.  The file descriptor is asked for on every call,
 * under the GIL: a socket closed by another thread has fileno() -1 (then
 * the socket's send() raises), and a descriptor is never reused under us.
 */

#include <errno.h>
#include <sys/socket.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* Larger sends copy long enough that other threads should run meanwhile. */
#define HELD_SEND_MAX (64 * 1024)

/* self: the tuple (sock.fileno, sock.send) of held_sender(). */
static PyObject *
held_send(PyObject *self, PyObject *data)
{
    PyObject *fallback = PyTuple_GET_ITEM(self, 1);
    if (PyBytes_CheckExact(data) && PyBytes_GET_SIZE(data) <= HELD_SEND_MAX) {
        PyObject *number = PyObject_CallNoArgs(PyTuple_GET_ITEM(self, 0));
        if (number == NULL) {
            return NULL;
        }
        long fd = PyLong_Check(number) ? PyLong_AsLong(number) : -1;
        Py_DECREF(number);
        if (fd == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (fd >= 0 && fd <= INT_MAX) {
            ssize_t sent = send((int)fd, PyBytes_AS_STRING(data),
                                (size_t)PyBytes_GET_SIZE(data), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (sent >= 0) {
                return PyLong_FromSsize_t((Py_ssize_t)sent);
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                return PyErr_SetFromErrno(PyExc_OSError);
            }
        }
    }
    return PyObject_CallOneArg(fallback, data);
}

static PyMethodDef held_send_def = {
    "send", held_send, METH_O,
    "send($self, data)\n--\n\n"
    "socket.send(data), with the GIL held when it cannot block (degu._cparse)."};

static PyObject *
held_sender(PyObject *Py_UNUSED(module), PyObject *sock)
{
    PyObject *fileno = PyObject_GetAttrString(sock, "fileno");
    if (fileno == NULL) {
        return NULL;
    }
    PyObject *send_method = PyObject_GetAttrString(sock, "send");
    if (send_method == NULL) {
        Py_DECREF(fileno);
        return NULL;
    }
    PyObject *pair = PyTuple_Pack(2, fileno, send_method);
    Py_DECREF(fileno);
    Py_DECREF(send_method);
    if (pair == NULL) {
        return NULL;
    }
    PyObject *func = PyCFunction_New(&held_send_def, pair);
    Py_DECREF(pair);
    return func;
}

PyMethodDef degu_held_methods[] = {
    {"held_sender", held_sender, METH_O,
     "held_sender($module, sock)\n--\n\n"
     "A callable like sock.send that sends bytes of up to 64 KiB without releasing the "
     "GIL when the send cannot block (MSG_DONTWAIT), and calls sock.send otherwise.  For "
     "a plain, blocking socket.socket (degu._transport uses it so)."},
    {NULL, NULL, 0, NULL},
};

